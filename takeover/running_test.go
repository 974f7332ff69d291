package takeover

import (
	"bufio"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pdsgo/pds/takeover/refpds"
)

// TestTakeoverCheckWhileRunning: --check reads a reference that is running (another process with its
// databases open in WAL mode, writing), neither blocking its writes nor changing its files, while the takeover
// itself refuses it; once that process is gone the takeover runs.
func TestTakeoverCheckWhileRunning(t *testing.T) {
	f := buildRefFixture(t)
	alice := f.accounts[0]
	aliceStore := filepath.Join(f.root, "actors", shard(alice.did), alice.did.String(), "store.sqlite")

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TAKEOVER_RUNNING_REF="+f.root, "TAKEOVER_RUNNING_STORE="+aliceStore)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); err != nil || line != "READY\n" {
		t.Fatalf("the running reference: %q %v", line, err)
	}

	// account.sqlite has a write in its log that no checkpoint moved into the file: a checkpoint by the check
	// would change the file.
	accountBefore := fileHash(t, filepath.Join(f.root, "account.sqlite")) + fileHash(t, filepath.Join(f.root, "account.sqlite-wal"))
	filesBefore := fileNames(t, f.root)
	to := filepath.Join(t.TempDir(), "data")

	start := time.Now()
	rep, err := runTakeover(t, f, to, func(o *Options) { o.Check = true })
	end := time.Now()
	if err != nil {
		t.Fatalf("--check of a running reference: %v", err)
	}
	if rep.RunningPID != cmd.Process.Pid || rep.Accounts != 3 || rep.SeqHead != f.seqHead || rep.Blobs != 2 {
		t.Errorf("report: pid %d (want %d) %+v", rep.RunningPID, cmd.Process.Pid, rep)
	}
	var text strings.Builder
	rep.WriteText(&text)
	if !strings.Contains(text.String(), fmt.Sprintf("the reference is running (process %d)", cmd.Process.Pid)) {
		t.Errorf("report text:\n%s", text.String())
	}

	_, err = runTakeover(t, f, to, nil)
	if !errors.Is(err, refpds.ErrRunning) || !strings.Contains(err.Error(), fmt.Sprintf("open in process %d", cmd.Process.Pid)) {
		t.Fatalf("the takeover of a running reference: %v", err)
	}
	if _, err := os.Stat(to); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("wrote %s", to)
	}
	if got := fileHash(t, filepath.Join(f.root, "account.sqlite")) + fileHash(t, filepath.Join(f.root, "account.sqlite-wal")); got != accountBefore {
		t.Error("account.sqlite or its log changed: the check checkpointed or wrote")
	}
	if got := fileNames(t, f.root); got != filesBefore {
		t.Errorf("files in the reference's directory changed:\n%s\nwant\n%s", got, filesBefore)
	}

	// The writer went on during the check: WAL readers do not block it (it writes with no busy timeout).
	fmt.Fprintf(stdin, "%d %d\n", start.UnixNano(), end.UnixNano())
	line, err := out.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var during, failed int
	if _, err := fmt.Sscanf(line, "%d %d", &during, &failed); err != nil || during == 0 || failed != 0 {
		t.Fatalf("the running reference's writes during the check: %q (want some, none failed)", line)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d writes of the running reference during the check (%v), none blocked", during, end.Sub(start).Round(time.Millisecond))

	// Stopped: the takeover runs.
	if _, err := runTakeover(t, f, to, nil); err != nil {
		t.Fatalf("after the reference stopped: %v", err)
	}
}

// TestMain runs runningReference instead of the tests when TestTakeoverCheckWhileRunning starts this test
// binary as its running reference.
func TestMain(m *testing.M) {
	if root := os.Getenv("TAKEOVER_RUNNING_REF"); root != "" {
		if err := runningReference(root, os.Getenv("TAKEOVER_RUNNING_STORE")); err != nil {
			fmt.Fprintln(os.Stderr, "running reference:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runningReference is the running reference of TestTakeoverCheckWhileRunning (a separate process: SQLite's
// locks are per process): it keeps account.sqlite and sequencer.sqlite open as the reference does, and writes
// to sequencer.sqlite and an account's store until told the check's time window, which it answers with the
// number of its writes in it and of its failed writes.
func runningReference(root, storePath string) error {
	var dbs []*sql.DB
	defer func() {
		for _, db := range dbs {
			db.Close()
		}
	}()
	open := func(path string) (*sql.DB, error) {
		db, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)&_pragma=wal_autocheckpoint(0)&_pragma=busy_timeout(0)")
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(1)
		dbs = append(dbs, db)
		return db, nil
	}
	account, err := open(filepath.Join(root, "account.sqlite"))
	if err != nil {
		return err
	}
	seq, err := open(filepath.Join(root, "sequencer.sqlite"))
	if err != nil {
		return err
	}
	store, err := open(storePath)
	if err != nil {
		return err
	}
	// Open (and hold) all three before the test looks: a connection opens its files at its first statement.
	for _, w := range []struct {
		db *sql.DB
		q  string
	}{{account, "UPDATE account SET email = email"}, {seq, "UPDATE repo_seq SET invalidated = invalidated"}, {store, "UPDATE repo_root SET indexedAt = indexedAt"}} {
		if _, err := w.db.Exec(w.q); err != nil {
			return err
		}
	}
	window := make(chan [2]int64)
	go func() {
		var w [2]int64
		fmt.Fscan(os.Stdin, &w[0], &w[1])
		window <- w
	}()
	var times []int64
	failed := 0
	fmt.Println("READY")
	for i := 0; ; i++ {
		select {
		case w := <-window:
			n := 0
			for _, at := range times {
				if at >= w[0] && at <= w[1] {
					n++
				}
			}
			fmt.Println(n, failed)
			io.Copy(io.Discard, os.Stdin)
			return nil
		default:
		}
		_, err := seq.Exec("UPDATE repo_seq SET invalidated = invalidated WHERE seq = (SELECT max(seq) FROM repo_seq)")
		if err == nil && i%10 == 0 {
			_, err = store.Exec("UPDATE repo_root SET indexedAt = indexedAt")
		}
		if err != nil {
			failed++
			fmt.Fprintln(os.Stderr, "running reference:", err)
		} else {
			times = append(times, time.Now().UnixNano())
		}
		time.Sleep(time.Millisecond)
	}
}

func fileHash(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

// fileNames lists the files below root.
func fileNames(t *testing.T, root string) string {
	t.Helper()
	var names []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			names = append(names, rel)
		}
		return nil
	})
	sort.Strings(names)
	return strings.Join(names, "\n")
}
