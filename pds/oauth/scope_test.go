package oauth_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/bluesky-social/indigo/atproto/lexicon"
	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/pds/oauth"
)

// sets stands in for Lexicon resolution of permission sets (DNS _lexicon TXT records and a remote PDS: outside
// the machine; package scope tests the real resolver).
type sets map[string]*lexicon.SchemaPermissionSet

func (s sets) Resolve(ctx context.Context, nsid syntax.NSID) (*lexicon.SchemaPermissionSet, error) {
	if set, ok := s[nsid.String()]; ok {
		return set, nil
	}
	return nil, errors.New("no such permission set")
}

// TestIncludeScopes: a permission set is resolved at PAR (an unresolvable one fails the request) and shown on
// the consent page by its title with what it grants.
func TestIncludeScopes(t *testing.T) {
	title := "Example Calendar"
	e := newEnv(t, func(c *oauth.Config) {
		c.IncludeResolver = sets{"com.example.calendar.basic": {Type: "permission-set", Title: &title,
			Permissions: []lexicon.SchemaPermission{{Type: "permission", Resource: "repo", Collection: []string{"com.example.calendar.event"}}}}}
	})
	a := e.newApp("atproto", "include:com.example.calendar.basic")
	_, authURL := a.Start(t, aliceHandle)
	b := newFormBrowser(t)
	b.get(authURL)
	f := b.hidden()
	f.Set("identifier", aliceHandle)
	f.Set("password", alicePassword)
	b.post(e.issuer+oauth.PathSignIn, f)
	if !strings.Contains(b.last, "Example Calendar") || !strings.Contains(b.last, "com.example.calendar.event") {
		t.Fatalf("consent page does not describe the permission set:\n%s", b.last)
	}
	bad := e.newApp("atproto", "include:com.example.missing.set")
	if _, err := bad.CA.SendAuthRequest(context.Background(), bad.Meta, bad.Cfg.Scopes, ""); err == nil || !strings.Contains(err.Error(), "invalid_scope") {
		t.Fatalf("unresolvable permission set accepted: %v", err)
	}
}
