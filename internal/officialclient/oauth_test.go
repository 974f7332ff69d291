package officialclient

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/pdsgo/pds/internal/testbrowser"
	"github.com/pdsgo/pds/internal/testpds"
)

// TestOfficialClientOAuth runs node/oauth.mjs: the official app-side OAuth client (@atproto/oauth-client-node,
// a loopback development client) signs a user of the PDS in. The script discovers the PDS from the handle
// (resolved through the PDS's resolveHandle), sends the PAR and prints "AUTHORIZE_URL <url>"; this test opens
// each such URL in chromium, signs in (or, the second time, picks the account on the chooser) and approves,
// and the browser follows the redirect to the script's callback. Every check the script makes must pass:
// writes within the granted repo: scope, a 403 ScopeMissingError outside it, refresh, replay refusal, revoke.
func TestOfficialClientOAuth(t *testing.T) {
	if err := EnsureInstalled(); err != nil {
		t.Fatal(err)
	}
	node, err := NodeBinary()
	if err != nil {
		t.Fatal(err)
	}
	p := testpds.Start(t, testpds.Options{})
	alice := p.CreateAccount("alice")
	open := testbrowser.New(t)
	browser, closeBrowser := open() // one browser: the second sign-in goes through the account chooser
	defer closeBrowser()

	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "oauth.mjs")
	cmd.Dir = NodeDir()
	cmd.Env = append(os.Environ(),
		"PDS_URL="+p.URL,
		"PLC_URL="+p.PLCURL,
		"HANDLE="+alice.Handle,
		"SCOPE=atproto repo:app.bsky.feed.post",
		"DENIED_COLLECTION=app.bsky.feed.like",
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	var (
		mu     sync.Mutex
		output strings.Builder
		urls   = make(chan string, 4)
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(urls)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			output.WriteString(line + "\n")
			mu.Unlock()
			if u, ok := strings.CutPrefix(line, "AUTHORIZE_URL "); ok {
				urls <- u
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	signIns := 0
	for u := range urls {
		signIns++
		testbrowser.SignInAndApprove(t, browser, u, alice.Handle, alice.Password)
	}
	<-done
	err = cmd.Wait()
	mu.Lock()
	out := output.String()
	mu.Unlock()
	if err != nil {
		t.Fatalf("oauth.mjs failed (%v):\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	if signIns != 2 || !strings.Contains(out, " 0 failed") || strings.Contains(out, "\nFAIL ") || strings.HasPrefix(out, "FAIL ") {
		t.Fatalf("oauth.mjs: %d sign-ins, output:\n%s\nstderr:\n%s", signIns, out, stderr.String())
	}
	t.Logf("oauth.mjs:\n%s", out)
}
