package scope

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/bluesky-social/indigo/atproto/auth"
	"github.com/bluesky-social/indigo/atproto/lexicon"
	"github.com/bluesky-social/indigo/atproto/syntax"
)

// Scope tokens with a meaning of their own.
const (
	Atproto           = "atproto"
	TransitionGeneric = "transition:generic"
	TransitionChat    = "transition:chat.bsky"
	TransitionEmail   = "transition:email"
)

// Repo actions and account actions.
const (
	ActionCreate = "create"
	ActionUpdate = "update"
	ActionDelete = "delete"
	ActionRead   = "read"
	ActionManage = "manage"
)

// ErrMissingAtproto: the scope lacks the atproto token every atproto OAuth grant carries.
var ErrMissingAtproto = errors.New("scope: required 'atproto' scope missing")

// ErrMalformed: the scope string is not space-separated scope tokens (RFC 6749 §3.3).
var ErrMalformed = errors.New("scope: malformed scope string")

// Set is a parsed scope: its tokens, the permissions they grant directly, and the include: permission sets
// (which grant nothing until Expand resolves them).
type Set struct {
	tokens     []string
	atproto    bool
	generic    bool
	chat       bool
	email      bool
	perms      []auth.Permission // repo, blob, rpc, account, identity
	includes   []auth.Permission // include:
	expanded   []includedSet
	isExpanded bool
}

type includedSet struct {
	include auth.Permission
	set     *lexicon.SchemaPermissionSet
	perms   []auth.Permission // the repo/rpc permissions the set may grant
}

// Parse reads a granted (or requested) scope string. The atproto token is required. Tokens that are not valid
// permissions under the current definitions are kept in String() but grant nothing, as the spec asks (clients
// may request permissions this server does not know yet).
func Parse(scope string) (*Set, error) {
	s := &Set{}
	for _, tok := range strings.Split(scope, " ") {
		if tok == "" || !validToken(tok) {
			return nil, fmt.Errorf("%w: %q", ErrMalformed, scope)
		}
		if slices.Contains(s.tokens, tok) {
			continue
		}
		s.tokens = append(s.tokens, tok)
		switch tok {
		case Atproto:
			s.atproto = true
			continue
		case TransitionGeneric:
			s.generic = true
			continue
		case TransitionChat:
			s.chat = true
			continue
		case TransitionEmail:
			s.email = true
			continue
		}
		p, err := parsePermission(tok)
		if err != nil {
			continue
		}
		if p.Resource == "include" {
			s.includes = append(s.includes, *p)
		} else {
			s.perms = append(s.perms, *p)
		}
	}
	if !s.atproto {
		return nil, ErrMissingAtproto
	}
	return s, nil
}

// validToken: printable ASCII except space, '"' and '\' (RFC 6749 scope-token).
func validToken(t string) bool {
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// parsePermission is indigo's parser, plus the account "status" attribute that @atproto/oauth-scopes defines
// and the pinned indigo does not know.
func parsePermission(tok string) (*auth.Permission, error) {
	p, err := auth.ParsePermissionString(tok)
	if err == nil {
		return p, nil
	}
	g, gerr := auth.ParseGenericScope(tok)
	if gerr != nil || g.Resource != "account" {
		return nil, err
	}
	attr := g.Positional
	for k, v := range g.Params {
		switch {
		case k == "attr" && attr == "" && len(v) == 1:
			attr = v[0]
		case k == "action" && len(v) == 1 && (v[0] == ActionRead || v[0] == ActionManage):
		default:
			return nil, err
		}
	}
	if attr != "status" {
		return nil, err
	}
	return &auth.Permission{Type: "permission", Resource: "account", Attribute: attr, Action: g.Params["action"]}, nil
}

// String is the scope as parsed (duplicates dropped), for token responses.
func (s *Set) String() string { return strings.Join(s.tokens, " ") }

// Tokens are the scope's tokens, in order.
func (s *Set) Tokens() []string { return slices.Clone(s.tokens) }

// Has reports whether the scope contains exactly this token.
func (s *Set) Has(token string) bool { return slices.Contains(s.tokens, token) }

// Atproto reports the atproto token (always true for a Set from Parse). Alone it grants identity only: the
// account's DID, as the token response's sub.
func (s *Set) Atproto() bool { return s.atproto }

// Includes are the include: permission sets the scope names (NSIDs).
func (s *Set) Includes() []syntax.NSID {
	out := make([]syntax.NSID, 0, len(s.includes))
	for _, p := range s.includes {
		out = append(out, syntax.NSID(p.NSID))
	}
	return out
}

// all yields the direct permissions and those of expanded permission sets.
func (s *Set) all(yield func(auth.Permission) bool) {
	for _, p := range s.perms {
		if !yield(p) {
			return
		}
	}
	for _, e := range s.expanded {
		for _, p := range e.perms {
			if !yield(p) {
				return
			}
		}
	}
}

// AllowsRepo reports whether the scope lets the client create, update or delete records of collection.
// transition:generic allows every record write.
func (s *Set) AllowsRepo(collection syntax.NSID, action string) bool {
	if !s.atproto || (action != ActionCreate && action != ActionUpdate && action != ActionDelete) {
		return false
	}
	if s.generic {
		return true
	}
	for p := range s.all {
		if p.Resource != "repo" {
			continue
		}
		// No action parameter means all of them.
		if len(p.Action) > 0 && !slices.Contains(p.Action, action) {
			continue
		}
		if slices.Contains(p.Collection, "*") || slices.Contains(p.Collection, collection.String()) {
			return true
		}
	}
	return false
}

// AllowsBlob reports whether the scope lets the client upload a blob of this MIME type (parameters such as
// "; charset=" are ignored; a type with a wildcard or without a subtype is never allowed). transition:generic
// allows every upload.
func (s *Set) AllowsBlob(mimeType string) bool {
	if !s.atproto {
		return false
	}
	mt := strings.ToLower(strings.TrimSpace(strings.Split(mimeType, ";")[0]))
	if !isMime(mt) {
		return false
	}
	if s.generic {
		return true
	}
	for p := range s.all {
		if p.Resource != "blob" {
			continue
		}
		for _, a := range p.Accept {
			if acceptMatches(strings.ToLower(a), mt) {
				return true
			}
		}
	}
	return false
}

func isMime(m string) bool {
	typ, sub, ok := strings.Cut(m, "/")
	return ok && typ != "" && sub != "" && !strings.Contains(sub, "/") && !strings.ContainsAny(m, "* ")
}

// acceptMatches: "*/*" matches everything, "type/*" every subtype of type, anything else exactly.
func acceptMatches(accept, mt string) bool {
	switch {
	case accept == "*/*":
		return true
	case strings.HasSuffix(accept, "/*"):
		return strings.HasPrefix(mt, strings.TrimSuffix(accept, "*"))
	default:
		return accept == mt
	}
}

// AllowsRPC reports whether the scope lets the client call method lxm on the service aud ("did:...#service_id")
// through the PDS: proxied requests and com.atproto.server.getServiceAuth tokens. transition:generic allows every
// method outside chat.bsky.*, transition:chat.bsky the chat.bsky.* ones; lxm "*" (a service auth token for any
// method) needs transition:generic or an rpc:*?aud= permission.
func (s *Set) AllowsRPC(lxm syntax.NSID, aud string) bool {
	if !s.atproto {
		return false
	}
	isChat := strings.HasPrefix(lxm.String(), "chat.bsky.")
	if s.generic && (lxm == "*" || !isChat) {
		return true
	}
	if s.chat && isChat {
		return true
	}
	for p := range s.all {
		if p.Resource != "rpc" {
			continue
		}
		if p.Audience != "*" && p.Audience != aud {
			continue
		}
		if slices.Contains(p.Endpoint, "*") || slices.Contains(p.Endpoint, lxm.String()) {
			return true
		}
	}
	return false
}

// AllowsAccount reports whether the scope grants action ("read" or "manage") on an account attribute ("email",
// "repo", "status"). manage implies read. transition:email grants reading the email address.
func (s *Set) AllowsAccount(attr, action string) bool {
	if !s.atproto || (action != ActionRead && action != ActionManage) {
		return false
	}
	if s.email && attr == "email" && action == ActionRead {
		return true
	}
	for p := range s.all {
		if p.Resource != "account" || p.Attribute != attr {
			continue
		}
		granted := ActionRead
		if len(p.Action) > 0 {
			granted = p.Action[0]
		}
		if granted == ActionManage || granted == action {
			return true
		}
	}
	return false
}

// AllowsIdentity reports whether the scope grants control of an identity attribute ("handle", or "*" for the
// whole DID document). identity:* covers every attribute.
func (s *Set) AllowsIdentity(attr string) bool {
	if !s.atproto {
		return false
	}
	for p := range s.all {
		if p.Resource == "identity" && (p.Attribute == "*" || p.Attribute == attr) {
			return true
		}
	}
	return false
}

// IncludeResolver resolves a permission set NSID to its Lexicon definition (the main def of type
// permission-set).
type IncludeResolver interface {
	Resolve(ctx context.Context, nsid syntax.NSID) (*lexicon.SchemaPermissionSet, error)
}

// Expand resolves the scope's include: permission sets and adds the permissions they may grant: repo and rpc
// permissions only, each resource under the set's own NSID authority, rpc audiences either "*" or inherited
// from the include's aud (inheritAud). Invalid or out-of-authority entries are ignored, as the spec asks; a set
// that cannot be resolved fails the whole expansion (an auth request must then fail). Calling it again
// re-resolves (sets may change between token refreshes).
func (s *Set) Expand(ctx context.Context, r IncludeResolver) error {
	var out []includedSet
	for _, inc := range s.includes {
		nsid := syntax.NSID(inc.NSID)
		set, err := r.Resolve(ctx, nsid)
		if err != nil {
			return fmt.Errorf("scope: resolving permission set %s: %w", nsid, err)
		}
		out = append(out, includedSet{include: inc, set: set, perms: setPermissions(nsid, inc.Audience, set)})
	}
	s.expanded, s.isExpanded = out, true
	return nil
}

// Expanded reports whether Expand has run (so include: sets are accounted for).
func (s *Set) Expanded() bool { return s.isExpanded || len(s.includes) == 0 }

// setPermissions turns a permission set's entries into permissions, applying the spec's restrictions.
func setPermissions(setNSID syntax.NSID, aud string, set *lexicon.SchemaPermissionSet) []auth.Permission {
	if set == nil {
		return nil
	}
	var out []auth.Permission
	for _, sp := range set.Permissions {
		if sp.Type != "permission" {
			continue
		}
		params := url.Values{}
		switch sp.Resource {
		case "repo":
			params["collection"] = sp.Collection
			if len(sp.Action) > 0 {
				params["action"] = sp.Action
			}
		case "rpc":
			a := sp.Audience
			switch {
			case sp.InheritAud && a == "" && aud != "":
				a = aud
			case sp.InheritAud || (a != "" && a != "*"):
				// inheritAud with an aud of its own, or a fixed service DID: invalid in a set.
				continue
			}
			params["lxm"] = sp.LXM
			if a != "" {
				params.Set("aud", a)
			}
		default:
			// blob, account and identity may not be granted through sets.
			continue
		}
		// Re-parse through the string form so set entries get exactly the checks scope strings get.
		p, err := auth.ParsePermissionString(sp.Resource + "?" + params.Encode())
		if err != nil {
			continue
		}
		names := p.Collection
		if p.Resource == "rpc" {
			names = p.Endpoint
		}
		if len(names) == 0 || !allUnder(setNSID, names) {
			continue
		}
		out = append(out, *p)
	}
	return out
}

func allUnder(setNSID syntax.NSID, names []string) bool {
	for _, n := range names {
		if !underAuthority(setNSID, n) {
			return false
		}
	}
	return true
}

// underAuthority: a set may address resources in its own NSID group and below, never "*", siblings or parents
// (the permission spec's Namespace Authority; @atproto/oauth-scopes isParentAuthorityOf). For the set
// app.example.authFull the group is "app.example.", so app.example.post and app.example.feed.like qualify.
func underAuthority(setNSID syntax.NSID, name string) bool {
	if name == "*" {
		return false
	}
	set := setNSID.String()
	dot := strings.LastIndex(set, ".")
	if dot < 0 {
		return false
	}
	group := set[:dot+1]
	return len(name) > len(group) && strings.HasPrefix(name, group)
}
