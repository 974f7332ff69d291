package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	atrepo "github.com/bluesky-social/indigo/atproto/repo"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/internal/testplc"
	"github.com/pdsgo/pds/pds/blobstore"
)

// drillServer is the pds binary on a fixed port and data directory, killed with SIGKILL.
type drillServer struct {
	bin string
	env []string
	url string
	cmd *exec.Cmd
	log *bytes.Buffer
	mu  sync.Mutex
}

func (s *drillServer) start(t *testing.T) {
	t.Helper()
	s.log = &bytes.Buffer{}
	cmd := exec.Command(s.bin, "serve")
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = lockedWriter{&s.mu, s.log}, lockedWriter{&s.mu, s.log}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.cmd = cmd
	t.Cleanup(s.kill)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(s.url + "/xrpc/_health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("pds did not start:\n%s", s.logs())
}

func (s *drillServer) kill() {
	if s.cmd == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	s.cmd.Wait()
	s.cmd = nil
}

func (s *drillServer) logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// ackedWrite is a post the server acknowledged.
type ackedWrite struct {
	did, rkey, cid, blob string
	blobData             []byte
	at                   time.Time
}

// TestRestoreDrill: the pds binary with continuous backup every second takes concurrent writes with blob
// uploads on several accounts while a relay-like consumer follows the firehose; it is killed (SIGKILL), its
// data directory deleted, `pds restore` writes a new one, and the binary starts on it. Every write
// acknowledged more than one interval (plus a round's time) before the kill is there, every repository
// verifies against its DID document, seq continues above the last one served, the consumer resuming from its
// cursor gets #sync for every account (at its restored head), blobs are served, and the backup verifies.
func TestRestoreDrill(t *testing.T) {
	plcURL := testplc.Shared(t)
	root := t.TempDir()
	bin := filepath.Join(root, "pds-bin")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/pdsgo/pds/cmd/pds").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dataDir := filepath.Join(root, "data")
	const interval = time.Second
	env := map[string]string{
		"PDS_HOSTNAME":            "localhost",
		"PDS_PORT":                strconv.Itoa(port),
		"PDS_DATA_DIRECTORY":      dataDir,
		"PDS_DID_PLC_URL":         plcURL,
		"PDS_INVITE_REQUIRED":     "false",
		"PDS_ADMIN_PASSWORD":      "drill-admin",
		"PDS_RATE_LIMITS_ENABLED": "false",
		"PDS_BACKUP_URL":          "file://" + filepath.Join(root, "backup"),
		"PDS_BACKUP_KEY":          "drill passphrase",
		"PDS_BACKUP_INTERVAL":     "1s",
	}
	var envList []string
	for k, v := range env {
		envList = append(envList, k+"="+v)
	}
	envList = append(envList, "PATH="+os.Getenv("PATH"), "HOME="+os.Getenv("HOME"))
	srv := &drillServer{bin: bin, env: envList, url: fmt.Sprintf("http://localhost:%d", port)}
	srv.start(t)
	p := testpds.Attach(t, srv.url, plcURL)

	var accts []*testpds.Account
	for i := range 4 {
		accts = append(accts, p.CreateAccount(fmt.Sprintf("drill%d", i)))
	}
	// The relay: follows the live firehose and remembers its cursor and each account's last rev.
	relay := testpds.Subscribe(t, p, "0")
	relay.Start()
	var relayMu sync.Mutex
	var cursor int64
	lastRev := map[string]string{}
	relayDone := make(chan struct{})
	go func() {
		defer close(relayDone)
		for {
			f, err := relay.Read(10 * time.Second)
			if err != nil {
				return
			}
			relayMu.Lock()
			cursor = max(cursor, f.Seq)
			if f.Commit != nil {
				lastRev[f.Commit.Repo] = f.Commit.Rev
			}
			relayMu.Unlock()
		}
	}()

	// The continuous backup is running (its first round is done) before the writes start.
	testpds.WaitUntil(t, 60*time.Second, "a first backup round", func() bool {
		ents, _ := os.ReadDir(filepath.Join(root, "backup", "rounds"))
		return len(ents) > 0
	})

	// Concurrent writers: posts, every third one with a new image.
	hc := &http.Client{Timeout: 10 * time.Second}
	var mu sync.Mutex
	var acked []ackedWrite
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, a := range accts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				w, err := drillPost(hc, srv.url, a, i, n)
				if err != nil {
					return // the server was killed
				}
				mu.Lock()
				acked = append(acked, *w)
				mu.Unlock()
			}
		}()
	}
	// Write for 5 s, and longer on a loaded machine: until the first acknowledged write is older than twice
	// the bound checked below for the longest round logged so far, so that some writes are old enough to check.
	time.Sleep(5 * time.Second)
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		var d time.Duration
		for _, l := range strings.Split(srv.logs(), "\n") {
			if _, v, ok := strings.Cut(l, `msg="backup round"`); ok {
				if _, v, ok = strings.Cut(v, " duration="); ok {
					v, _, _ = strings.Cut(v, " ")
					if rd, err := time.ParseDuration(v); err == nil {
						d = max(d, rd)
					}
				}
			}
		}
		mu.Lock()
		first := time.Time{}
		if len(acked) > 0 {
			first = acked[0].at
		}
		mu.Unlock()
		if !first.IsZero() && time.Since(first) > 2*(max(interval, d)+d)+time.Second {
			break
		}
	}
	srv.kill() // mid-write
	killedAt := time.Now()
	killedLog := srv.logs()
	close(stop)
	wg.Wait()
	<-relayDone
	relayMu.Lock()
	oldCursor := cursor
	relayMu.Unlock()
	if len(acked) < 20 || oldCursor == 0 {
		t.Fatalf("only %d writes acknowledged, cursor %d:\n%s", len(acked), oldCursor, srv.logs())
	}

	// The machine is gone: restore onto a new data directory with the CLI, as an operator would.
	if err := os.RemoveAll(dataDir); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := pdsCLI(t, env, "", "restore", "--to", dataDir)
	if code != 0 {
		t.Fatalf("pds restore: exit %d: %s%s\nserver log:\n%s", code, out, errOut, killedLog)
	}
	if !strings.Contains(errOut, "100%") {
		t.Errorf("no progress shown: %q", errOut)
	}
	srv.start(t)

	// Every write acknowledged long enough before the kill is there: the round after a write starts within an
	// interval of it (or when the round in progress ends) and takes a round's time, so the bound is
	// max(interval, D) + D for the longest round D the server logged (about 0.3 s idle; more on a loaded machine).
	d := longestRound(t, killedLog)
	threshold := killedAt.Add(-max(interval, d) - d - 100*time.Millisecond)
	t.Logf("longest round %s: checking writes acknowledged before kill-%s", d, killedAt.Sub(threshold))
	checked, lost := 0, 0
	for _, w := range acked {
		r := p.Query("com.atproto.repo.getRecord", url.Values{"repo": {w.did}, "collection": {"app.bsky.feed.post"}, "rkey": {w.rkey}}, "")
		present := r.Status == 200 && r.JSON()["cid"] == w.cid
		if w.at.Before(threshold) {
			checked++
			if !present {
				t.Errorf("write %s/%s acknowledged %s before the kill is missing: %s", w.did, w.rkey, killedAt.Sub(w.at), r)
			}
			if w.blob != "" {
				g := testpds.GetBlob(t, p, w.did, w.blob, nil, "")
				if g.Status != 200 || !bytes.Equal(g.Body, w.blobData) {
					t.Errorf("blob %s of %s: %d", w.blob, w.did, g.Status)
				}
			}
		} else if !present {
			lost++
		}
	}
	t.Logf("%d writes acknowledged; %d older than the threshold all present; %d of the last ones not in the backup", len(acked), checked, lost)
	if checked == 0 {
		t.Fatal("no write to check")
	}

	// Every repository verifies against its DID document; the consumer resuming from its cursor sees seq
	// continue above it and a #sync for every account, at the restored head.
	heads := map[string]string{}
	wentBack := 0
	for _, a := range accts {
		heads[a.DID] = verifyServedRepo(t, p, plcURL, a.DID)
		relayMu.Lock()
		if heads[a.DID] < lastRev[a.DID] {
			wentBack++
		}
		relayMu.Unlock()
	}
	if wentBack == 0 {
		t.Error("no account went back: the drill did not kill the server between rounds")
	}
	resumed := testpds.SubscribeAt(t, p, oldCursor)
	synced := map[string]bool{}
	for len(synced) < len(accts) {
		f, err := resumed.Read(15 * time.Second)
		if err != nil {
			t.Fatalf("resumed consumer: %v after %d #sync", err, len(synced))
		}
		if f.Info != nil {
			// It missed nothing the server has: the lost events were served to it before the kill.
			t.Errorf("resumed consumer: #info %s %s", f.Info.Name, testpds.Str(f.Info.Message))
			continue
		}
		if f.Seq <= oldCursor {
			t.Fatalf("seq %d after the restore, the consumer's cursor was %d", f.Seq, oldCursor)
		}
		if f.Sync != nil {
			if f.Sync.Rev != heads[f.Sync.Did] {
				t.Errorf("#sync of %s at rev %s, the restored head is %s", f.Sync.Did, f.Sync.Rev, heads[f.Sync.Did])
			}
			synced[f.Sync.Did] = true
		}
	}
	// New writes continue on the restored heads, above the #syncs.
	w, err := drillPost(hc, srv.url, accts[0], 0, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	for {
		f, err := resumed.Read(15 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if f.Commit != nil && f.Commit.Repo == w.did {
			if f.Commit.Since == nil || *f.Commit.Since != heads[w.did] {
				t.Errorf("the first commit after the restore is since %v, the restored head is %s", f.Commit.Since, heads[w.did])
			}
			break
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, "restored-from-backup.json")); !os.IsNotExist(err) {
		t.Errorf("the restore marker is still there after the start: %v", err)
	}
	// The backup itself verifies (the CLI).
	if out, errOut, code := pdsCLI(t, env, "", "backup", "verify"); code != 0 || !strings.Contains(out, "verifies") {
		t.Fatalf("pds backup verify: exit %d: %s%s", code, out, errOut)
	}
	if out := mustCLI(t, env, "backup", "list"); strings.Count(out, "\n") < 3 {
		t.Fatalf("pds backup list: %s", out)
	}
}

// drillPost creates a post (every third with a new image) and returns it once acknowledged.
func drillPost(hc *http.Client, base string, a *testpds.Account, i, n int) (*ackedWrite, error) {
	call := func(nsid, ctype string, body []byte) (map[string]any, error) {
		req, _ := http.NewRequest(http.MethodPost, base+"/xrpc/"+nsid, bytes.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("Authorization", "Bearer "+a.AccessJwt)
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != 200 {
			return nil, fmt.Errorf("%s: %d %s", nsid, resp.StatusCode, raw)
		}
		var out map[string]any
		return out, json.Unmarshal(raw, &out)
	}
	w := &ackedWrite{did: a.DID}
	post := testpds.Post(fmt.Sprintf("drill %d/%d", i, n))
	if n%3 == 0 {
		w.blobData = testpds.PNG(uint64(i*1_000_000+n), 2000)
		out, err := call("com.atproto.repo.uploadBlob", "image/png", w.blobData)
		if err != nil {
			return nil, err
		}
		ref, _ := json.Marshal(out["blob"])
		var br testpds.BlobRef
		json.Unmarshal(ref, &br)
		if br.CID() != blobstore.CIDOf(w.blobData).String() {
			return nil, fmt.Errorf("uploadBlob: %s", ref)
		}
		w.blob = br.CID()
		post = testpds.ImagePost(post["text"].(string), br)
	}
	body, _ := json.Marshal(map[string]any{"repo": a.DID, "collection": "app.bsky.feed.post", "record": post})
	out, err := call("com.atproto.repo.createRecord", "application/json", body)
	if err != nil {
		return nil, err
	}
	w.at = time.Now()
	w.cid, _ = out["cid"].(string)
	uri, _ := out["uri"].(string)
	w.rkey = uri[strings.LastIndex(uri, "/")+1:]
	return w, nil
}

// verifyServedRepo fetches the repository from the server and verifies it as a relay would: the commit signed
// by the DID document's key, the MST loads; it returns the head's rev.
func verifyServedRepo(t *testing.T, p *testpds.PDS, plcURL, did string) string {
	t.Helper()
	car := testpds.GetRepoCAR(t, p, did, "")
	commit, _, err := atrepo.LoadRepoFromCAR(context.Background(), bytes.NewReader(car))
	if err != nil {
		t.Fatalf("%s: served repo does not load: %v", did, err)
	}
	doc, err := (&plc.Client{URL: plcURL}).GetDocumentData(context.Background(), did)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := atcrypto.ParsePublicDIDKey(doc.SigningKey())
	if err != nil {
		t.Fatal(err)
	}
	if err := commit.VerifySignature(pub); err != nil {
		t.Fatalf("%s: commit signature against the DID document: %v", did, err)
	}
	return commit.Rev
}

// longestRound is the longest backup round in a server log ("backup round ... duration=1.2s").
func longestRound(t *testing.T, log string) time.Duration {
	var longest time.Duration
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, "msg=\"backup round\"") {
			continue
		}
		_, v, ok := strings.Cut(l, " duration=")
		if !ok {
			continue
		}
		v, _, _ = strings.Cut(v, " ")
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("round duration %q: %v", v, err)
		}
		longest = max(longest, d)
		n++
	}
	if n < 3 {
		t.Fatalf("only %d backup rounds logged:\n%s", n, log)
	}
	return longest
}
