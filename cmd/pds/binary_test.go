package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// pdsBinary builds cmd/pds once per test run, as a user would (`go build ./cmd/pds`).
func pdsBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "pdsbin")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "pds")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// runningBinary is `pds serve` started as a process.
type runningBinary struct {
	URL string
	mu  sync.Mutex
	log strings.Builder // stderr so far
}

func (r *runningBinary) Log() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.String()
}

// startBinary runs `pds serve` with only env (plus PATH and HOME) and waits for /xrpc/_health. Outbound HTTPS
// goes to a dead proxy, so a request that would leave the machine fails instead.
func startBinary(t *testing.T, env map[string]string, args ...string) *runningBinary {
	t.Helper()
	bin := pdsBinary(t)
	port := env["PDS_PORT"]
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + cmd.Dir, "HTTPS_PROXY=http://127.0.0.1:1", "HTTP_PROXY=http://127.0.0.1:1"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &runningBinary{URL: "http://localhost:" + port}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			r.mu.Lock()
			r.log.WriteString(sc.Text() + "\n")
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
		}
		cmd.Wait()
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(r.URL + "/xrpc/_health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pds serve did not become healthy: %v\n%s", err, r.Log())
		}
		select {
		case <-done:
			t.Fatalf("pds serve exited:\n%s", r.Log())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// walkthrough returns the README's shell block marked as the local walkthrough.
func walkthrough(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- walkthrough:[^>]*-->\n```sh\n(.*?)```").FindSubmatch(b)
	if m == nil {
		t.Fatal("README.md has no walkthrough block")
	}
	return string(m[1])
}

// TestREADMEWalkthrough runs README.md's local walkthrough, as written, against the built binary started as
// the README's first command starts it (no PDS_DID_PLC_URL, nothing else running): the account, the post and
// the handle change go to the embedded PLC directory, and nothing leaves the machine.
func TestREADMEWalkthrough(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	data := t.TempDir()
	srv := startBinary(t, map[string]string{"PDS_PORT": fmt.Sprint(port), "PDS_DATA_DIRECTORY": data,
		"PDS_EMBEDDED_PLC_ADDR": "127.0.0.1:0"})
	m := regexp.MustCompile(`plc_directory="embedded (http://127\.0\.0\.1:\d+) `).FindStringSubmatch(srv.Log())
	if m == nil {
		t.Fatalf("start-up log does not say the embedded directory is used:\n%s", srv.Log())
	}
	plcURL := m[1]

	script := walkthrough(t)
	// The one change: the walkthrough's server is on 2583; this one is on a free port.
	if !strings.Contains(script, "PDS=http://localhost:2583\n") {
		t.Fatal("walkthrough does not start with PDS=http://localhost:2583")
	}
	script = strings.Replace(script, "PDS=http://localhost:2583\n", fmt.Sprintf("PDS=http://localhost:%d\n", port), 1)
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sh := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	sh.Dir = work
	out, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("walkthrough failed: %v\n%s\nserver log:\n%s", err, out, srv.Log())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	did := lines[0]
	if !strings.HasPrefix(did, "did:plc:") || !strings.Contains(string(out), "hello\n") || lines[len(lines)-1] != did {
		t.Fatalf("walkthrough output: %q", out)
	}
	if fi, err := os.Stat(filepath.Join(work, "repo.car")); err != nil || fi.Size() < 100 {
		t.Fatalf("repo.car: %v", err)
	}
	// The DID and its new handle are in the embedded directory.
	resp, err := http.Get(plcURL + "/" + did)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(doc), `"at://alice2.test"`) {
		t.Fatalf("embedded directory: %d %s", resp.StatusCode, doc)
	}
	if _, err := os.Stat(filepath.Join(data, "plc.sqlite")); err != nil {
		t.Fatal(err)
	}
}
