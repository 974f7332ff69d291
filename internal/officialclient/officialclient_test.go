package officialclient

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pdsgo/pds/internal/testpds"
)

// scriptTimeout bounds one run of e2e.mjs (it takes a few seconds).
const scriptTimeout = 2 * time.Minute

// TestOfficialClient runs node/e2e.mjs (the official @atproto/api and @atproto/repo packages on Node 22) against
// a PDS with its own PLC directory. Each check the script makes is one line of its output, shown on failure.
func TestOfficialClient(t *testing.T) {
	if err := EnsureInstalled(); err != nil {
		t.Fatal(err)
	}
	node, err := NodeBinary()
	if err != nil {
		t.Fatal(err)
	}
	p := testpds.Start(t, testpds.Options{})

	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "e2e.mjs")
	cmd.Dir = NodeDir()
	cmd.Env = append(os.Environ(),
		"PDS_URL="+p.URL,
		"PLC_URL="+p.PLCURL,
		"PDS_JWT_SECRET="+string(p.Config.JWTSecret),
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err = cmd.Run()
	output := out.String()
	if err != nil {
		t.Fatalf("e2e.mjs failed (%v):\n%s", err, output)
	}
	if !strings.Contains(output, " 0 failed") || strings.Contains(output, "\nFAIL ") {
		t.Fatalf("e2e.mjs exited 0 but reports failures:\n%s", output)
	}
	t.Logf("e2e.mjs:\n%s", output)
}
