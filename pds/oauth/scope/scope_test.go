package scope

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/bluesky-social/indigo/atproto/lexicon"
	"github.com/bluesky-social/indigo/atproto/syntax"
)

const appview = "did:web:api.bsky.app#bsky_appview"

func mustParse(t *testing.T, s string) *Set {
	t.Helper()
	set, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return set
}

func TestParse(t *testing.T) {
	s := mustParse(t, "atproto repo:app.bsky.feed.post atproto made:up?x=1 transition:email")
	if !s.Atproto() || s.String() != "atproto repo:app.bsky.feed.post made:up?x=1 transition:email" {
		t.Fatalf("parsed %q", s.String())
	}
	if !s.Has("made:up?x=1") || s.Has("repo:*") {
		t.Fatal("Has wrong")
	}
	for _, bad := range []string{"", "atproto  repo:*", " atproto", "atproto\trepo:*", `atproto "x"`, "atproto repo:caf\u00e9.x.y", `atproto a\b`} {
		if _, err := Parse(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q): %v, want ErrMalformed", bad, err)
		}
	}
	for _, noAtproto := range []string{"transition:generic", "repo:* blob:*/*", "atproto:x"} {
		if _, err := Parse(noAtproto); !errors.Is(err, ErrMissingAtproto) {
			t.Errorf("Parse(%q): %v, want ErrMissingAtproto", noAtproto, err)
		}
	}
}

// atproto alone is identity only; each Allows* is shown true with the matching permission first.
func TestAtprotoAlone(t *testing.T) {
	full := mustParse(t, "atproto repo:* blob:*/* rpc:*?aud="+strings.ReplaceAll(appview, "#", "%23")+" account:email?action=manage identity:*")
	only := mustParse(t, "atproto")
	checks := []struct {
		name string
		f    func(*Set) bool
	}{
		{"repo", func(s *Set) bool { return s.AllowsRepo("app.bsky.feed.post", ActionCreate) }},
		{"blob", func(s *Set) bool { return s.AllowsBlob("image/png") }},
		{"rpc", func(s *Set) bool { return s.AllowsRPC("app.bsky.feed.getTimeline", appview) }},
		{"account", func(s *Set) bool { return s.AllowsAccount("email", ActionRead) }},
		{"identity", func(s *Set) bool { return s.AllowsIdentity("handle") }},
	}
	for _, c := range checks {
		if !c.f(full) {
			t.Errorf("%s: control refused", c.name)
		}
		if c.f(only) {
			t.Errorf("%s: allowed by atproto alone", c.name)
		}
		if c.f(&Set{}) {
			t.Errorf("%s: allowed by an empty Set", c.name)
		}
	}
}

func TestRepo(t *testing.T) {
	cases := []struct {
		scope  string
		coll   syntax.NSID
		action string
		want   bool
	}{
		{"repo:app.bsky.feed.post", "app.bsky.feed.post", ActionCreate, true},
		{"repo:app.bsky.feed.post", "app.bsky.feed.post", ActionUpdate, true},
		{"repo:app.bsky.feed.post", "app.bsky.feed.post", ActionDelete, true},
		{"repo:app.bsky.feed.post", "app.bsky.feed.postgate", ActionCreate, false},
		{"repo:app.bsky.feed.post", "app.bsky.feed.like", ActionCreate, false},
		{"repo:app.bsky.feed.post", "app.bsky.feed.post", "publish", false},
		{"repo:app.bsky.feed.like?action=create", "app.bsky.feed.like", ActionCreate, true},
		{"repo:app.bsky.feed.like?action=create", "app.bsky.feed.like", ActionDelete, false},
		{"repo:app.bsky.feed.like?action=create&action=delete", "app.bsky.feed.like", ActionDelete, true},
		{"repo:app.bsky.feed.like?action=create&action=delete", "app.bsky.feed.like", ActionUpdate, false},
		{"repo:*", "com.example.anything", ActionUpdate, true},
		{"repo:*?action=delete", "com.example.anything", ActionDelete, true},
		{"repo:*?action=delete", "com.example.anything", ActionCreate, false},
		{"repo?collection=app.bsky.feed.post&collection=app.bsky.feed.like", "app.bsky.feed.like", ActionCreate, true},
		{"repo?collection=app.bsky.feed.post&collection=app.bsky.feed.like", "app.bsky.graph.follow", ActionCreate, false},
		{"repo:app.bsky.feed.post?action=publish", "app.bsky.feed.post", ActionCreate, false}, // invalid: grants nothing
		{"repo:app.bsky.feed.*", "app.bsky.feed.post", ActionCreate, false},                   // no partial wildcards
		{"repo:app.bsky.feed.post?collection=app.bsky.feed.like", "app.bsky.feed.like", ActionCreate, false},
	}
	for _, c := range cases {
		if got := mustParse(t, "atproto "+c.scope).AllowsRepo(c.coll, c.action); got != c.want {
			t.Errorf("%s: AllowsRepo(%s, %s) = %v, want %v", c.scope, c.coll, c.action, got, c.want)
		}
	}
}

func TestBlob(t *testing.T) {
	cases := []struct {
		scope, mime string
		want        bool
	}{
		{"blob:image/*", "image/png", true},
		{"blob:image/*", "image/jpeg", true},
		{"blob:image/*", "IMAGE/PNG", true},
		{"blob:image/*", "video/mp4", false},
		{"blob:image/*", "image/*", false},
		{"blob:image/*", "image", false},
		{"blob:image/*", "imagex/png", false},
		{"blob:image/png", "image/png", true},
		{"blob:image/png", "image/gif", false},
		{"blob:*/*", "application/octet-stream", true},
		{"blob:*/*", "*/*", false},
		{"blob:*/*", "nonsense", false},
		{"blob?accept=video/*&accept=text/html", "text/html; charset=utf-8", true},
		{"blob?accept=video/*&accept=text/html", "video/webm", true},
		{"blob?accept=video/*&accept=text/html", "text/plain", false},
		{"blob:*/png", "image/png", false}, // invalid accept: grants nothing
	}
	for _, c := range cases {
		if got := mustParse(t, "atproto "+c.scope).AllowsBlob(c.mime); got != c.want {
			t.Errorf("%s: AllowsBlob(%q) = %v, want %v", c.scope, c.mime, got, c.want)
		}
	}
}

func TestRPC(t *testing.T) {
	const tl = "rpc:app.bsky.feed.getTimeline?aud=did:web:api.bsky.app%23bsky_appview"
	cases := []struct {
		scope string
		lxm   syntax.NSID
		aud   string
		want  bool
	}{
		{tl, "app.bsky.feed.getTimeline", appview, true},
		{tl, "app.bsky.feed.getTimeline", "did:web:evil.example.com#bsky_appview", false},
		{tl, "app.bsky.feed.getTimeline", "did:web:api.bsky.app#other", false},
		{tl, "app.bsky.feed.getAuthorFeed", appview, false},
		{"rpc:app.bsky.feed.getTimeline?aud=*", "app.bsky.feed.getTimeline", "did:web:any.example.com#x", true},
		{"rpc?lxm=*&aud=did:web:api.bsky.app%23bsky_appview", "app.bsky.actor.getProfile", appview, true},
		{"rpc?lxm=*&aud=did:web:api.bsky.app%23bsky_appview", "app.bsky.actor.getProfile", "did:web:x.example.com#y", false},
		{"rpc?lxm=*&aud=did:web:api.bsky.app%23bsky_appview", "*", appview, true},
		{"rpc:*?aud=*", "app.bsky.actor.getProfile", appview, false},                   // both wildcards: invalid
		{"rpc:app.bsky.feed.getTimeline", "app.bsky.feed.getTimeline", appview, false}, // aud is required
		{"rpc?lxm=app.bsky.feed.getTimeline&lxm=app.bsky.feed.getFeed&aud=*", "app.bsky.feed.getFeed", appview, true},
	}
	for _, c := range cases {
		if got := mustParse(t, "atproto "+c.scope).AllowsRPC(c.lxm, c.aud); got != c.want {
			t.Errorf("%s: AllowsRPC(%s, %s) = %v, want %v", c.scope, c.lxm, c.aud, got, c.want)
		}
	}
}

func TestAccountAndIdentity(t *testing.T) {
	acc := []struct {
		scope, attr, action string
		want                bool
	}{
		{"account:email", "email", ActionRead, true},
		{"account:email", "email", ActionManage, false},
		{"account:email?action=manage", "email", ActionRead, true},
		{"account:email?action=manage", "email", ActionManage, true},
		{"account:email", "repo", ActionRead, false},
		{"account:repo?action=manage", "repo", ActionManage, true},
		{"account?attr=repo&action=manage", "repo", ActionManage, true},
		{"account:status", "status", ActionRead, true},
		{"account:status", "status", ActionManage, false},
		{"account:status?action=manage", "status", ActionManage, true},
		{"account:status?action=delete", "status", ActionRead, false},
		{"account:phone", "phone", ActionRead, false},
		{"account:email", "email", "write", false},
	}
	for _, c := range acc {
		if got := mustParse(t, "atproto "+c.scope).AllowsAccount(c.attr, c.action); got != c.want {
			t.Errorf("%s: AllowsAccount(%s, %s) = %v, want %v", c.scope, c.attr, c.action, got, c.want)
		}
	}
	id := []struct {
		scope, attr string
		want        bool
	}{
		{"identity:handle", "handle", true},
		{"identity:handle", "*", false},
		{"identity:*", "handle", true},
		{"identity:*", "*", true},
		{"identity:*?", "handle", true},
		{"identity:did", "did", false},
	}
	for _, c := range id {
		if got := mustParse(t, "atproto "+c.scope).AllowsIdentity(c.attr); got != c.want {
			t.Errorf("%s: AllowsIdentity(%s) = %v, want %v", c.scope, c.attr, got, c.want)
		}
	}
}

func TestTransition(t *testing.T) {
	g := mustParse(t, "atproto transition:generic")
	if !g.AllowsRepo("com.example.anything", ActionDelete) || !g.AllowsBlob("video/mp4") ||
		!g.AllowsRPC("app.bsky.feed.getTimeline", appview) || !g.AllowsRPC("com.example.x", "did:web:x.example.com#y") ||
		!g.AllowsRPC("*", appview) {
		t.Fatal("transition:generic misses an app-password power")
	}
	if g.AllowsRPC("chat.bsky.convo.sendMessage", "did:web:api.bsky.chat#bsky_chat") || g.AllowsAccount("email", ActionRead) ||
		g.AllowsIdentity("handle") || g.AllowsAccount("status", ActionManage) || g.AllowsBlob("bogus") {
		t.Fatal("transition:generic grants chat, account or identity")
	}
	c := mustParse(t, "atproto transition:chat.bsky")
	if !c.AllowsRPC("chat.bsky.convo.sendMessage", "did:web:api.bsky.chat#bsky_chat") || c.AllowsRPC("app.bsky.feed.getTimeline", appview) ||
		c.AllowsRepo("app.bsky.feed.post", ActionCreate) || c.AllowsRPC("*", appview) {
		t.Fatal("transition:chat.bsky wrong")
	}
	gc := mustParse(t, "atproto transition:generic transition:chat.bsky")
	if !gc.AllowsRPC("chat.bsky.convo.sendMessage", "did:web:api.bsky.chat#bsky_chat") || !gc.AllowsRPC("app.bsky.feed.getTimeline", appview) {
		t.Fatal("generic + chat wrong")
	}
	e := mustParse(t, "atproto transition:email")
	if !e.AllowsAccount("email", ActionRead) || e.AllowsAccount("email", ActionManage) || e.AllowsRepo("app.bsky.feed.post", ActionCreate) {
		t.Fatal("transition:email wrong")
	}
}

// memResolver serves permission sets from memory (the network resolver is tested in resolver_test.go).
type memResolver map[syntax.NSID]*lexicon.SchemaPermissionSet

func (m memResolver) Resolve(_ context.Context, nsid syntax.NSID) (*lexicon.SchemaPermissionSet, error) {
	if s, ok := m[nsid]; ok {
		return s, nil
	}
	return nil, errors.New("not found")
}

func perm(resource string, f func(p *lexicon.SchemaPermission)) lexicon.SchemaPermission {
	p := lexicon.SchemaPermission{Type: "permission", Resource: resource}
	f(&p)
	return p
}

func strp(s string) *string { return &s }

func exampleSet() *lexicon.SchemaPermissionSet {
	return &lexicon.SchemaPermissionSet{
		Type:   "permission-set",
		Title:  strp("Basic App Functionality"),
		Detail: strp("Creation of posts and interactions"),
		Permissions: []lexicon.SchemaPermission{
			perm("repo", func(p *lexicon.SchemaPermission) { p.Collection = []string{"app.example.post"} }),
			perm("repo", func(p *lexicon.SchemaPermission) {
				p.Collection = []string{"app.example.feed.like"}
				p.Action = []string{"delete"}
			}),
			perm("repo", func(p *lexicon.SchemaPermission) { p.Collection = []string{"app.other.thing"} }),              // other authority
			perm("repo", func(p *lexicon.SchemaPermission) { p.Collection = []string{"app.examplex.post"} }),            // sibling sharing a prefix
			perm("repo", func(p *lexicon.SchemaPermission) { p.Collection = []string{"*"} }),                            // wildcard
			perm("repo", func(p *lexicon.SchemaPermission) { p.Collection = []string{"app.example.a", "app.other.b"} }), // one outside
			perm("repo", func(p *lexicon.SchemaPermission) {
				p.Collection = []string{"app.example.bad"}
				p.Action = []string{"publish"}
			}),
			perm("rpc", func(p *lexicon.SchemaPermission) {
				p.LXM = []string{"app.example.getFeed"}
				p.InheritAud = true
			}),
			perm("rpc", func(p *lexicon.SchemaPermission) {
				p.LXM = []string{"app.example.getFeedSkeleton"}
				p.Audience = "*"
			}),
			perm("rpc", func(p *lexicon.SchemaPermission) {
				p.LXM = []string{"app.example.getPinned"}
				p.Audience = "did:web:api.example.com#svc"
			}),
			perm("rpc", func(p *lexicon.SchemaPermission) {
				p.LXM = []string{"app.example.getBoth"}
				p.Audience = "*"
				p.InheritAud = true
			}),
			perm("rpc", func(p *lexicon.SchemaPermission) {
				p.LXM = []string{"com.atproto.server.deleteAccount"}
				p.Audience = "*"
			}),
			perm("blob", func(p *lexicon.SchemaPermission) {}),
			perm("account", func(p *lexicon.SchemaPermission) {}),
			perm("identity", func(p *lexicon.SchemaPermission) {}),
			{Type: "token", Resource: "repo", Collection: []string{"app.example.token"}},
		},
	}
}

func TestExpand(t *testing.T) {
	const svc = "did:web:api.example.com#svc_appview"
	r := memResolver{"app.example.authFull": exampleSet()}
	s := mustParse(t, "atproto include:app.example.authFull?aud=did:web:api.example.com%23svc_appview")
	if s.Expanded() || s.AllowsRepo("app.example.post", ActionCreate) {
		t.Fatal("an include grants something before Expand")
	}
	if got := s.Includes(); len(got) != 1 || got[0] != "app.example.authFull" {
		t.Fatalf("Includes %v", got)
	}
	if err := s.Expand(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if !s.Expanded() {
		t.Fatal("not marked expanded")
	}
	allowed := []struct {
		name string
		ok   bool
	}{
		{"repo own group", s.AllowsRepo("app.example.post", ActionCreate)},
		{"repo child group", s.AllowsRepo("app.example.feed.like", ActionDelete)},
		{"rpc inherited aud", s.AllowsRPC("app.example.getFeed", svc)},
		{"rpc aud *", s.AllowsRPC("app.example.getFeedSkeleton", "did:web:other.example.com#x")},
	}
	for _, a := range allowed {
		if !a.ok {
			t.Errorf("%s: refused", a.name)
		}
	}
	refused := []struct {
		name string
		ok   bool
	}{
		{"repo action not listed", s.AllowsRepo("app.example.feed.like", ActionCreate)},
		{"repo other authority", s.AllowsRepo("app.other.thing", ActionCreate)},
		{"repo sibling prefix", s.AllowsRepo("app.examplex.post", ActionCreate)},
		{"repo wildcard", s.AllowsRepo("com.example.whatever", ActionCreate)},
		{"repo half outside", s.AllowsRepo("app.example.a", ActionCreate)},
		{"repo bad action", s.AllowsRepo("app.example.bad", ActionCreate)},
		{"rpc inherited aud elsewhere", s.AllowsRPC("app.example.getFeed", "did:web:other.example.com#x")},
		{"rpc fixed service DID", s.AllowsRPC("app.example.getPinned", "did:web:api.example.com#svc")},
		{"rpc aud and inheritAud", s.AllowsRPC("app.example.getBoth", svc)},
		{"rpc outside authority", s.AllowsRPC("com.atproto.server.deleteAccount", svc)},
		{"blob via set", s.AllowsBlob("image/png")},
		{"non-permission entry", s.AllowsRepo("app.example.token", ActionCreate)},
	}
	for _, r := range refused {
		if r.ok {
			t.Errorf("%s: allowed", r.name)
		}
	}

	// Without an aud on the include, inheritAud permissions grant nothing.
	noAud := mustParse(t, "atproto include:app.example.authFull")
	if err := noAud.Expand(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if !noAud.AllowsRepo("app.example.post", ActionCreate) || noAud.AllowsRPC("app.example.getFeed", svc) {
		t.Fatal("include without aud wrong")
	}

	// A set that cannot be resolved fails the expansion.
	missing := mustParse(t, "atproto include:app.example.authMissing")
	if err := missing.Expand(context.Background(), r); err == nil {
		t.Fatal("unresolvable set expanded")
	}
}

func TestUnderAuthority(t *testing.T) {
	cases := []struct {
		set, name string
		want      bool
	}{
		{"app.example.authFull", "app.example.post", true},
		{"app.example.authFull", "app.example.feed.post", true},
		{"app.example.feed.authOnlyPost", "app.example.feed.post", true},
		{"app.example.feed.authOnlyPost", "app.example.feed.getPostThread", true},
		{"app.example.feed.authOnlyPost", "app.example.actor.profile", false},
		{"app.example.feed.authOnlyPost", "app.example.post", false},
		{"app.example.authFull", "app.examplex.post", false},
		{"app.example.authFull", "app.example", false},
		{"app.example.authFull", "*", false},
	}
	for _, c := range cases {
		if got := underAuthority(syntax.NSID(c.set), c.name); got != c.want {
			t.Errorf("underAuthority(%s, %s) = %v, want %v", c.set, c.name, got, c.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	s := mustParse(t, "atproto transition:email repo:app.bsky.feed.post repo:app.bsky.feed.like?action=create&action=delete "+
		"blob:image/* blob:*/* rpc:app.bsky.feed.getTimeline?aud=did:web:api.bsky.app%23bsky_appview account:email?action=manage "+
		"identity:handle include:app.example.authFull made:up")
	if err := s.Expand(context.Background(), memResolver{"app.example.authFull": exampleSet()}); err != nil {
		t.Fatal(err)
	}
	got := s.Describe()
	want := []string{
		"Know which account you are (your DID)",
		"Read your email address",
		"Create, update and delete posts (app.bsky.feed.post)",
		"Create and delete likes (app.bsky.feed.like)",
		"Upload images",
		"Upload files of any type",
		"Use app.bsky.feed.getTimeline on the service did:web:api.bsky.app#bsky_appview on your behalf",
		"Read and change your email address",
		"Change your handle",
		"Basic App Functionality: Creation of posts and interactions (app.example.authFull)",
		`Unrecognized permission "made:up" (grants nothing)`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Describe:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var inc Description
	for _, d := range s.Descriptions() {
		if d.Scope == "include:app.example.authFull" {
			inc = d
		}
	}
	wantDetails := []string{
		"Create, update and delete records of type app.example.post",
		"Delete records of type app.example.feed.like",
		"Use app.example.getFeedSkeleton on any service on your behalf",
	}
	if !slices.Equal(inc.Details, wantDetails) {
		t.Fatalf("include details:\n%s", strings.Join(inc.Details, "\n"))
	}
}
