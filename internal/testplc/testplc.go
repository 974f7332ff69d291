// Package testplc starts the reference PLC directory (npm @did-plc/server,
// in-memory database) on 127.0.0.1 for tests, benchmarks and scripts.
//
// The Node project lives in the node/ directory next to this file
// (package.json, package-lock.json, plc.js). node_modules is installed on
// first use with `npm ci` (see EnsureInstalled); Node.js must be on PATH.
//
// Typical use in a test:
//
//	url := testplc.Start(t) // "http://127.0.0.1:PORT", stopped in t.Cleanup
//	client := &plc.Client{URL: url}
package testplc

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pdsgo/pds/internal/npminstall"
)

// StartTimeout bounds how long Start/StartProcess wait for the directory to
// print its listening line.
const StartTimeout = 30 * time.Second

// NodeDir returns the absolute path of the Node project (the node/ directory
// next to this source file).
func NodeDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("testplc: runtime.Caller failed")
	}
	return filepath.Join(filepath.Dir(file), "node")
}

// EnsureInstalled runs `npm ci` in NodeDir() unless node_modules is already
// installed from the current package-lock.json (see internal/npminstall).
func EnsureInstalled() error {
	return npminstall.Project{Dir: NodeDir(), Sentinel: "@did-plc/server/package.json"}.Ensure()
}

// Start starts a fresh PLC directory (empty in-memory database) and returns
// its base URL, "http://127.0.0.1:PORT" (no trailing slash). The process is
// killed in t.Cleanup. It fails the test (it does not skip) when node is not
// on PATH or the directory does not come up within StartTimeout.
func Start(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("testplc: `node` not found on PATH: Node.js 20 (with npm) is required to run the reference PLC directory (@did-plc/server): %v", err)
	}
	url, stop, err := StartProcess()
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(stop)
	return url
}

var shared struct {
	once sync.Once
	url  string
	err  error
}

// Shared returns a PLC directory shared by every test of the process, started on first use. Starting one
// per test costs a Node process each; DIDs are unique, so tests do not see each other's state. The process
// dies with the test binary (Pdeathsig).
func Shared(t testing.TB) string {
	t.Helper()
	shared.once.Do(func() {
		if _, err := exec.LookPath("node"); err != nil {
			shared.err = fmt.Errorf("testplc: `node` not found on PATH: Node.js 20 (with npm) is required to run the reference PLC directory (@did-plc/server): %v", err)
			return
		}
		shared.url, _, shared.err = StartProcess()
	})
	if shared.err != nil {
		t.Fatalf("%v", shared.err)
	}
	return shared.url
}

// StartProcess is Start for non-test use (benchmarks, scripts). It installs
// node_modules if needed, starts `node plc.js` on a free loopback port and
// returns the base URL and a stop function (idempotent; kills the process
// group and waits for it).
func StartProcess() (url string, stop func(), err error) {
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		return "", nil, fmt.Errorf("testplc: `node` not found on PATH: Node.js 20 is required to run the reference PLC directory: %w", err)
	}
	if err := EnsureInstalled(); err != nil {
		return "", nil, err
	}
	dir := NodeDir()

	cmd := exec.Command(nodeBin, "plc.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PLC_PORT=0", "PLC_HOST=127.0.0.1")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// If the Go process dies without running cleanups (e.g. test
		// timeout panic), take the directory down with it.
		Pdeathsig: syscall.SIGKILL,
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, fmt.Errorf("testplc: stdout pipe: %w", err)
	}
	stderr := &tailBuffer{max: 8192}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("testplc: start node plc.js: %w", err)
	}

	waited := make(chan struct{})
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-waited
		})
	}

	portCh := make(chan int, 1)
	stdoutTail := &tailBuffer{max: 4096}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		found := false
		for sc.Scan() {
			line := sc.Text()
			if !found {
				if rest, ok := strings.CutPrefix(line, "PLC_LISTENING "); ok {
					if p, err := strconv.Atoi(strings.TrimSpace(rest)); err == nil && p > 0 {
						found = true
						portCh <- p
						continue
					}
				}
				stdoutTail.Write([]byte(line + "\n"))
			}
			// After the listening line: keep draining so the child never
			// blocks on a full pipe.
		}
		// Drain whatever is left if the scanner stopped on a huge line.
		_, _ = io.Copy(io.Discard, stdout)
	}()
	exited := make(chan error, 1)
	go func() {
		<-readDone // Wait closes the pipe: finish reading first
		exited <- cmd.Wait()
		close(waited)
	}()

	timer := time.NewTimer(StartTimeout)
	defer timer.Stop()
	select {
	case p := <-portCh:
		return "http://127.0.0.1:" + strconv.Itoa(p), stop, nil
	case werr := <-exited:
		return "", nil, fmt.Errorf("testplc: node plc.js exited before listening (%v)\nstdout:\n%s\nstderr:\n%s",
			werr, stdoutTail.String(), stderr.String())
	case <-timer.C:
		stop()
		return "", nil, fmt.Errorf("testplc: node plc.js did not print PLC_LISTENING within %s\nstdout:\n%s\nstderr:\n%s",
			StartTimeout, stdoutTail.String(), stderr.String())
	}
}

// tailBuffer keeps the last max bytes written to it; safe for concurrent use.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = append([]byte(nil), b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
