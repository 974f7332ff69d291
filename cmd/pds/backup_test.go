package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdsgo/pds/internal/testpds"
)

func TestBackupCommands(t *testing.T) {
	t.Parallel()
	// Without a location: a clear error, exit 1.
	for _, args := range [][]string{{"backup", "now"}, {"backup", "list"}, {"backup", "verify"}, {"restore", "--to", t.TempDir()}} {
		if _, errOut, code := pdsCLI(t, map[string]string{}, "", args...); code != 1 || !strings.Contains(errOut, "PDS_BACKUP_URL") {
			t.Errorf("pds %s without PDS_BACKUP_URL: exit %d, %q", strings.Join(args, " "), code, errOut)
		}
	}
	if _, errOut, code := pdsCLI(t, map[string]string{"PDS_BACKUP_URL": "file:///x"}, "", "backup", "now"); code != 1 || !strings.Contains(errOut, "PDS_BACKUP_KEY") {
		t.Errorf("without a key: exit %d, %q", code, errOut)
	}

	p := testpds.Start(t, testpds.Options{})
	a := p.CreateAccount("clibackup")
	testpds.CreateRecord(t, p, a, "app.bsky.feed.post", testpds.Post("hi"))
	env := map[string]string{
		"PDS_DATA_DIRECTORY": p.Config.DataDirectory,
		"PDS_BACKUP_URL":     "file://" + t.TempDir(),
		"PDS_BACKUP_KEY":     "cli passphrase",
	}
	var first struct {
		Round            string
		Accounts, Copied int
	}
	if err := json.Unmarshal([]byte(mustCLI(t, env, "backup", "now", "--json")), &first); err != nil || first.Accounts != 1 || first.Copied != 1 {
		t.Fatalf("backup now: %+v %v", first, err)
	}
	// The same process view again (a new CLI run): nothing changed, nothing copied.
	if out := mustCLI(t, env, "backup", "now"); !strings.Contains(out, "1 accounts (0 copied)") {
		t.Fatalf("second backup now: %s", out)
	}
	if out := mustCLI(t, env, "backup", "verify", first.Round); !strings.Contains(out, "round "+first.Round+" verifies") || !strings.Contains(out, "1 repositories") {
		t.Fatalf("verify: %s", out)
	}
	var rounds []map[string]any
	if err := json.Unmarshal([]byte(mustCLI(t, env, "backup", "list", "--json")), &rounds); err != nil || len(rounds) != 2 {
		t.Fatalf("list: %v %v", rounds, err)
	}
	// A wrong key: verify fails, exit 1.
	bad := map[string]string{"PDS_BACKUP_URL": env["PDS_BACKUP_URL"], "PDS_BACKUP_KEY": "wrong"}
	if _, errOut, code := pdsCLI(t, bad, "", "backup", "verify"); code != 1 || !strings.Contains(errOut, "wrong key") {
		t.Fatalf("verify with a wrong key: exit %d, %q", code, errOut)
	}
	// --at before the first round: nothing to restore.
	if _, errOut, code := pdsCLI(t, env, "", "restore", "--to", filepath.Join(t.TempDir(), "d"), "--at", "2000-01-01T00:00:00Z"); code != 1 || !strings.Contains(errOut, "no round at or before") {
		t.Fatalf("restore --at too early: exit %d, %q", code, errOut)
	}
}
