package officialclient

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/internal/testplc"
	"github.com/pdsgo/pds/internal/testservice"
)

// TestOfficialClientProxy runs node/proxy.mjs: @atproto/api's AtpAgent uses the AppView, preferences and chat
// through the PDS, as the Bluesky app does. The AppView and the chat service are test services that verify
// every service token against the PLC directory (an unverifiable token is a 401 the script would report).
func TestOfficialClientProxy(t *testing.T) {
	if err := EnsureInstalled(); err != nil {
		t.Fatal(err)
	}
	node, err := NodeBinary()
	if err != nil {
		t.Fatal(err)
	}
	plcURL := testplc.Start(t)
	const appViewDID = "did:web:appview.test"
	av := testservice.Start(t, plcURL, appViewDID)
	chat := testservice.Start(t, plcURL, "")
	chat.DID = testservice.RegisterDID(t, plcURL, map[string]string{"bsky_chat": chat.URL})

	withRev := func(w http.ResponseWriter, r *http.Request) {
		if rev := r.Header.Get("X-Atproto-Test-Rev"); rev != "" {
			w.Header().Set("Atproto-Repo-Rev", rev)
		}
	}
	av.Handle("app.bsky.feed.getTimeline", func(w http.ResponseWriter, r *http.Request) {
		withRev(w, r)
		testservice.WriteJSON(w, 200, map[string]any{"feed": []any{}, "cursor": "from-appview"})
	})
	av.Handle("app.bsky.actor.getProfile", func(w http.ResponseWriter, r *http.Request) {
		actor := r.URL.Query().Get("actor")
		testservice.WriteJSON(w, 200, map[string]any{"did": actor, "handle": "handle.invalid", "displayName": "From AppView"})
	})
	av.Handle("app.bsky.graph.getList", func(w http.ResponseWriter, r *http.Request) {
		testservice.WriteJSON(w, 400, map[string]string{"error": "BlockedActor", "message": "blocked"})
	})
	chat.Handle("chat.bsky.convo.listConvos", func(w http.ResponseWriter, r *http.Request) {
		testservice.WriteJSON(w, 200, map[string]any{"convos": []any{}, "cursor": "chat"})
	})
	p := testpds.Start(t, testpds.Options{PLCURL: plcURL, Env: map[string]string{
		"PDS_BSKY_APP_VIEW_URL":       av.URL,
		"PDS_BSKY_APP_VIEW_DID":       appViewDID,
		"PDS_DISABLE_SSRF_PROTECTION": "true", // the chat service's DID document points at loopback
	}})

	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "proxy.mjs")
	cmd.Dir = NodeDir()
	cmd.Env = append(os.Environ(), "PDS_URL="+p.URL, "CHAT_DID="+chat.DID)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err = cmd.Run()
	output := out.String()
	if err != nil {
		t.Fatalf("proxy.mjs failed (%v):\n%s", err, output)
	}
	if !strings.Contains(output, " 0 failed") || strings.Contains(output, "\nFAIL ") {
		t.Fatalf("proxy.mjs exited 0 but reports failures:\n%s", output)
	}
	t.Logf("proxy.mjs:\n%s", output)

	// What the services saw: verified tokens from the script's account, the client's labeler header.
	var timeline *testservice.Call
	for _, c := range av.Calls() {
		if c.NSID == "app.bsky.feed.getTimeline" {
			timeline = c
		}
		if c.NSID == "app.bsky.actor.getPreferences" || c.NSID == "app.bsky.actor.putPreferences" {
			t.Errorf("preferences went to the AppView")
		}
	}
	if timeline == nil || !strings.HasPrefix(timeline.Iss, "did:plc:") || timeline.Header.Get("Atproto-Accept-Labelers") == "" {
		t.Fatalf("AppView timeline call: %+v", timeline)
	}
	c := chat.Last(t)
	if c.NSID != "chat.bsky.convo.listConvos" || c.Iss != timeline.Iss || c.Claims["aud"] != chat.DID {
		t.Fatalf("chat call: %+v", c)
	}
}
