package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdsgo/pds/takeover"
)

// The takeover itself is tested in package takeover and end to end by scripts/takeover-reference.sh; here the
// command line: its required flags, its errors, and the progress lines it writes to a log.
func TestTakeoverCommand(t *testing.T) {
	_, errOut, code := pdsCLI(t, nil, "", "takeover", "--from", "/nonexistent")
	if code != 1 || !strings.Contains(errOut, "--from, --env and --to are required") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	dir := t.TempDir()
	to := filepath.Join(dir, "ours")
	_, errOut, code = pdsCLI(t, nil, "", "takeover", "--from", dir, "--env", filepath.Join(dir, "pds.env"), "--to", to, "--check")
	if code != 1 || !strings.Contains(errOut, "pds.env") || !strings.Contains(errOut, "missing from the reference data directory") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(to); !os.IsNotExist(err) {
		t.Fatal("a failed takeover created its destination")
	}
}

func TestTakeoverBarLog(t *testing.T) {
	var b bytes.Buffer
	bar := newTakeoverBar(&b, false)
	for i := int64(0); i <= 20; i++ {
		bar.update(takeover.Progress{Phase: "accounts", Done: i, Total: 20})
	}
	bar.update(takeover.Progress{Phase: "events", Done: 5, Total: 5})
	bar.finish()
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 12 || lines[0] != "takeover: accounts 0% (0/20)" || lines[10] != "takeover: accounts 100% (20/20)" || lines[11] != "takeover: events 100% (5/5)" {
		t.Fatalf("progress lines:\n%s", b.String())
	}
}
