package accountpages_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/pdsgo/pds/internal/testbrowser"
)

// TestFramedByAnotherOrigin: in a browser signed in as alice, a page of another origin (a loopback server on
// its own port: the same site as the server, so the browser's SameSite=Lax cookie goes along to the frames)
// frames the account overview, the sessions page and the OAuth consent page; chromium refuses to show them
// (frame-ancestors 'none', X-Frame-Options: DENY) and leaves an error page in their place. The same page
// frames a page of its own origin and one of a third origin that allows framing, and those load: the check
// tells a refused frame from a loaded one.
func TestFramedByAnotherOrigin(t *testing.T) {
	e, alice, ctx := newSignedIn(t)
	_, authURL := testoauthappNew(e).Start(t, alice.Handle)
	frameable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><title>frameable</title><p>frameable</p>`)
	}))
	defer frameable.Close()
	frames := map[string]string{
		"account":   e.pds.URL + "/account",
		"sessions":  e.pds.URL + "/account/sessions",
		"oauth":     authURL,
		"own":       "/own",
		"frameable": "http://localhost:" + port(t, frameable) + "/",
	}
	framer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/own" {
			fmt.Fprint(w, `<!doctype html><title>own</title><p>own</p>`)
			return
		}
		fmt.Fprint(w, `<!doctype html><title>framer</title><script>var loaded = []</script>`)
		for name, src := range frames {
			fmt.Fprintf(w, `<iframe name=%q src=%q onload="loaded.push(this.name)"></iframe>`, name, src)
		}
	}))
	defer framer.Close()
	framerURL := "http://localhost:" + port(t, framer) + "/"
	if strings.HasPrefix(framerURL, e.pds.URL) {
		t.Fatalf("the framing page %s has the server's origin", framerURL)
	}

	// Every frame fires load, refused or not; then the frame tree says what each one shows.
	testbrowser.Do(t, ctx, chromedp.Navigate(framerURL))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf("loaded.length === %d", len(frames)))); err != nil {
		t.Fatalf("the frames did not all load: %v", err)
	}
	tree, err := chromedp.Call(ctx, page.GetFrameTree, cdp.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	shown := map[string]*cdp.Frame{}
	for _, c := range tree.FrameTree.ChildFrames {
		shown[c.Frame.Name] = c.Frame
	}
	for name, src := range frames {
		f := shown[name]
		switch {
		case f == nil:
			t.Errorf("frame %s: not in the frame tree", name)
		case name == "own" || name == "frameable":
			if f.UnreachableURL != "" || f.SecurityOrigin == "://" {
				t.Errorf("frame %s (allowed) did not load: url %q, unreachable %q", name, f.URL, f.UnreachableURL)
			}
		default:
			if f.URL != "chrome-error://chromewebdata/" || f.UnreachableURL != src {
				t.Errorf("frame %s (%s) was shown: url %q, unreachable %q", name, src, f.URL, f.UnreachableURL)
			}
		}
	}
}

// port is the port a test server listens on.
func port(t *testing.T, s *httptest.Server) string {
	t.Helper()
	_, p, err := net.SplitHostPort(s.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return p
}
