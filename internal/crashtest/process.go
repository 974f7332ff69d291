// Package crashtest kills the real pds binary (SIGKILL) in the middle of concurrent writes, restarts it on the
// same data directory, and checks that no acknowledged write was lost, that the repositories still verify, that
// commit revs never go backwards, and that the firehose carries every commit in order (see crash_test.go).
//
// The default run is short (a few rounds of a few seconds); PDS_CRASH_ROUNDS and PDS_CRASH_ROUND_SECONDS make it
// a soak (docs/testing.md).
package crashtest

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a (re)started server may take to answer _health.
const startTimeout = 30 * time.Second

// buildPDS compiles cmd/pds into dir and returns the binary's path.
func buildPDS(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "pds")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/pdsgo/pds/cmd/pds")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go build cmd/pds: %v\n%s", err, out)
	}
	return bin
}

// freePort returns a loopback port that was free a moment ago; the server keeps it across restarts, so the
// accounts' DID documents (http://localhost:<port>) stay right.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// pdsProcess is the pds binary run as a child process on a fixed port and data directory.
type pdsProcess struct {
	bin, dataDir, plcURL string
	port                 int
	URL                  string
	starts               int

	cmd    *exec.Cmd
	exited chan struct{}
	logs   []string // one log file per start
}

func newPDSProcess(bin, dataDir, plcURL string, port int) *pdsProcess {
	return &pdsProcess{bin: bin, dataDir: dataDir, plcURL: plcURL, port: port, URL: fmt.Sprintf("http://localhost:%d", port)}
}

// env is the server's whole environment: the README's PDS_* variables and nothing inherited, so a developer's
// own PDS_* settings cannot change the test.
func (p *pdsProcess) env() []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"PDS_HOSTNAME=localhost",
		"PDS_PORT=" + strconv.Itoa(p.port),
		"PDS_DATA_DIRECTORY=" + p.dataDir,
		"PDS_DID_PLC_URL=" + p.plcURL,
		"PDS_INVITE_REQUIRED=false",
		"PDS_ADMIN_PASSWORD=crash-admin",
		"PDS_JWT_SECRET=crash-test-jwt-secret",
		// The writers and the checks are far above any per-IP limit: this test is about durability.
		"PDS_RATE_LIMITS_ENABLED=false",
	}
}

// start runs the binary and waits until it answers GET /xrpc/_health.
func (p *pdsProcess) start(t testing.TB) {
	t.Helper()
	p.starts++
	logPath := filepath.Join(filepath.Dir(p.dataDir), fmt.Sprintf("pds-%d.log", p.starts))
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	p.logs = append(p.logs, logPath)
	cmd := exec.Command(p.bin, "serve")
	cmd.Env = p.env()
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Pdeathsig: a test binary that dies (timeout panic) takes the server with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start pds: %v", err)
	}
	p.cmd = cmd
	p.exited = make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(p.exited)
	}()

	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			t.Fatalf("pds exited during start (start %d):\n%s", p.starts, p.logTail(4096))
		default:
		}
		resp, err := hc.Get(p.URL + "/xrpc/_health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.kill()
	t.Fatalf("pds did not become healthy within %s (start %d):\n%s", startTimeout, p.starts, p.logTail(4096))
}

// kill sends SIGKILL (no shutdown, no flush) and waits for the process to be gone. Idempotent.
func (p *pdsProcess) kill() {
	if p.cmd == nil {
		return
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
	p.cmd = nil
}

// logTail returns the end of the current start's log.
func (p *pdsProcess) logTail(n int) string {
	if len(p.logs) == 0 {
		return ""
	}
	b, _ := os.ReadFile(p.logs[len(p.logs)-1])
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// logLines returns every line of every start's log that matches keep.
func (p *pdsProcess) logLines(keep func(string) bool) []string {
	var out []string
	for i, path := range p.logs {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if keep(sc.Text()) {
				out = append(out, fmt.Sprintf("start %d: %s", i+1, sc.Text()))
			}
		}
		f.Close()
	}
	return out
}

// tally counts outcomes across workers.
type tally struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *tally) add(key string) {
	c.mu.Lock()
	if c.counts == nil {
		c.counts = map[string]int{}
	}
	c.counts[key]++
	c.mu.Unlock()
}

func (c *tally) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprint(c.counts)
}
