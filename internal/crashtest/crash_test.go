package crashtest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	atrepo "github.com/bluesky-social/indigo/atproto/repo"
	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/ipfs/go-cid"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/internal/testplc"
)

const (
	itemCollection    = "com.example.crash.item" // worker-owned keys: the exact final state is known
	postCollection    = "app.bsky.feed.post"     // server-chosen TID keys, never deleted
	numAccounts       = 3
	workersPerAccount = 2 // two writers per account: the per-account lock is exercised too
)

// crashConfig is the size of the run: short by default, a soak with PDS_CRASH_ROUNDS / PDS_CRASH_ROUND_SECONDS.
type crashConfig struct {
	rounds   int
	roundDur time.Duration
}

func loadCrashConfig(t *testing.T) crashConfig {
	cfg := crashConfig{rounds: 3, roundDur: 2 * time.Second}
	if v := os.Getenv("PDS_CRASH_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("PDS_CRASH_ROUNDS=%q: want a positive integer", v)
		}
		cfg.rounds = n
	}
	if v := os.Getenv("PDS_CRASH_ROUND_SECONDS"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			t.Fatalf("PDS_CRASH_ROUND_SECONDS=%q: want a positive number", v)
		}
		cfg.roundDur = time.Duration(f * float64(time.Second))
	}
	return cfg
}

// account is a test account and every commit the server acknowledged for it.
type account struct {
	name, did, token string

	mu     sync.Mutex
	acked  map[string]string // rev -> commit CID of every acknowledged commit
	maxRev string            // highest acknowledged rev
	posts  map[string]string // rkey -> CID of acknowledged posts
}

func (a *account) ack(rev, commitCID string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if prev, ok := a.acked[rev]; ok && prev != commitCID {
		return fmt.Errorf("%s: rev %s acknowledged for two commits: %s and %s", a.name, rev, prev, commitCID)
	}
	a.acked[rev] = commitCID
	if rev > a.maxRev {
		a.maxRev = rev
	}
	return nil
}

// state is one possible state of a key: absent, or the record with counter n (CID known once acknowledged).
type state struct {
	live bool
	n    int64
	cid  string // "" when not acknowledged
}

func (s state) String() string {
	if !s.live {
		return "absent"
	}
	return fmt.Sprintf("n=%d cid=%s", s.n, s.cid)
}

// keyModel is what a worker knows about one of its keys: the state after the last acknowledged write, and the
// outcomes of later writes that got no answer (the server died). The key's true state is one of these.
type keyModel struct {
	acked   state
	pending []state
}

func (k *keyModel) possible() []state { return append([]state{k.acked}, k.pending...) }

// certainlyLive: the key exists for sure (so applyWrites may update or delete it).
func (k *keyModel) certainlyLive() bool { return k.acked.live && len(k.pending) == 0 }

// worker writes to one account, sequentially, on keys only it touches.
type worker struct {
	id      int
	acct    *account
	rnd     *rand.Rand
	n       int64 // record counter: every record a worker writes is distinct
	keys    map[string]*keyModel
	order   []string // keys in creation order, for random picks
	nextKey int
	lastRev string // revs acknowledged to one sequential client must increase, across restarts too
	lastAck time.Time
	lostAt  time.Time // when a request of this round last got no answer
	lostErr error
	slowest time.Duration // slowest answered write of this round
	stats   *tally
}

func (w *worker) newKey() string {
	w.nextKey++
	k := fmt.Sprintf("w%d-%06d", w.id, w.nextKey)
	w.keys[k] = &keyModel{}
	w.order = append(w.order, k)
	return k
}

func (w *worker) record() (map[string]any, int64) {
	w.n++
	return map[string]any{
		"$type": itemCollection,
		"w":     int64(w.id),
		"n":     w.n,
		"pad":   strings.Repeat("x", w.rnd.IntN(300)),
	}, w.n
}

func (w *worker) pickKey(want func(*keyModel) bool) string {
	if len(w.order) == 0 {
		return ""
	}
	for range 8 {
		k := w.order[w.rnd.IntN(len(w.order))]
		if want(w.keys[k]) {
			return k
		}
	}
	return ""
}

// errTransport: the request got no answer; the worker stops for this round (the server is dead).
var errTransport = fmt.Errorf("no answer")

// call sends a write and keeps the slowest answer time.
func (w *worker) call(ctx context.Context, c *xrpcClient, nsid string, body any) (*answer, error) {
	start := time.Now()
	a, err := c.call(ctx, nsid, nil, body)
	if d := time.Since(start); err == nil && d > w.slowest {
		w.slowest = d
	}
	return a, err
}

func (w *worker) lost(err error) error {
	w.lostAt, w.lostErr = time.Now(), err
	return errTransport
}

// step makes one random write and updates the model. It returns errTransport when the outcome is unknown, and
// another error when the server answered something the model says is wrong.
func (w *worker) step(ctx context.Context, c *xrpcClient) error {
	did := w.acct.did
	p := w.rnd.IntN(100)
	switch {
	case p < 30: // createRecord on a new key
		k := w.newKey()
		rec, n := w.record()
		return w.single(ctx, c, "com.atproto.repo.createRecord", map[string]any{
			"repo": did, "collection": itemCollection, "rkey": k, "record": rec,
		}, k, state{live: true, n: n})
	case p < 55: // putRecord: update, or re-create a deleted key
		k := w.pickKey(func(*keyModel) bool { return true })
		if k == "" {
			k = w.newKey()
		}
		rec, n := w.record()
		return w.single(ctx, c, "com.atproto.repo.putRecord", map[string]any{
			"repo": did, "collection": itemCollection, "rkey": k, "record": rec,
		}, k, state{live: true, n: n})
	case p < 70: // deleteRecord (of a missing record too: a no-op)
		k := w.pickKey(func(m *keyModel) bool { return m.acked.live || len(m.pending) > 0 })
		if k == "" {
			return nil
		}
		return w.single(ctx, c, "com.atproto.repo.deleteRecord", map[string]any{
			"repo": did, "collection": itemCollection, "rkey": k,
		}, k, state{})
	case p < 90: // applyWrites: creates, an update and a delete in one commit
		return w.batch(ctx, c)
	default: // a post with a server-chosen TID key
		return w.post(ctx, c)
	}
}

// single runs a one-record write on key k whose success leaves k in state next.
func (w *worker) single(ctx context.Context, c *xrpcClient, nsid string, body map[string]any, k string, next state) error {
	m := w.keys[k]
	// Only a delete of a key that may be absent may answer without a commit.
	mayBeNoop := !next.live && !m.certainlyLive()
	a, err := w.call(ctx, c, nsid, body)
	if err != nil {
		m.pending = append(m.pending, next)
		w.stats.add(nsid + " unknown")
		return w.lost(err)
	}
	if a.Status != 200 {
		return fmt.Errorf("%s %s: %s", nsid, k, a)
	}
	if next.live {
		next.cid, _ = a.JSON()["cid"].(string)
		if next.cid == "" {
			return fmt.Errorf("%s %s: no cid in %s", nsid, k, a)
		}
	}
	m.acked, m.pending = next, nil
	w.stats.add(nsid + " ok")
	return w.ackCommit(a, nsid, mayBeNoop)
}

// ackCommit records the commit of an acknowledged write. mayBeNoop: the write may have changed nothing (delete
// of a missing record), so the answer may carry no commit.
func (w *worker) ackCommit(a *answer, what string, mayBeNoop bool) error {
	commitCID, rev := a.commitOf()
	if rev == "" {
		if mayBeNoop {
			return nil
		}
		return fmt.Errorf("%s: no commit in %s", what, a)
	}
	if rev <= w.lastRev {
		return fmt.Errorf("%s: commit rev %s is not after this client's previous acknowledged rev %s", what, rev, w.lastRev)
	}
	w.lastRev = rev
	w.lastAck = time.Now()
	return w.acct.ack(rev, commitCID)
}

func (w *worker) batch(ctx context.Context, c *xrpcClient) error {
	type planned struct {
		key  string
		next state
	}
	var writes []map[string]any
	var plan []planned
	for range 1 + w.rnd.IntN(3) {
		k := w.newKey()
		rec, n := w.record()
		writes = append(writes, map[string]any{"$type": "com.atproto.repo.applyWrites#create", "collection": itemCollection, "rkey": k, "value": rec})
		plan = append(plan, planned{k, state{live: true, n: n}})
	}
	used := map[string]bool{}
	if k := w.pickKey((*keyModel).certainlyLive); k != "" && !used[k] {
		used[k] = true
		rec, n := w.record()
		writes = append(writes, map[string]any{"$type": "com.atproto.repo.applyWrites#update", "collection": itemCollection, "rkey": k, "value": rec})
		plan = append(plan, planned{k, state{live: true, n: n}})
	}
	if k := w.pickKey((*keyModel).certainlyLive); k != "" && !used[k] {
		writes = append(writes, map[string]any{"$type": "com.atproto.repo.applyWrites#delete", "collection": itemCollection, "rkey": k})
		plan = append(plan, planned{k, state{}})
	}
	a, err := w.call(ctx, c, "com.atproto.repo.applyWrites", map[string]any{"repo": w.acct.did, "writes": writes})
	if err != nil {
		for _, p := range plan {
			w.keys[p.key].pending = append(w.keys[p.key].pending, p.next)
		}
		w.stats.add("applyWrites unknown")
		return w.lost(err)
	}
	if a.Status != 200 {
		return fmt.Errorf("applyWrites %v: %s", plan, a)
	}
	results, _ := a.JSON()["results"].([]any)
	if len(results) != len(plan) {
		return fmt.Errorf("applyWrites: %d results for %d writes: %s", len(results), len(plan), a)
	}
	for i, p := range plan {
		if p.next.live {
			r, _ := results[i].(map[string]any)
			p.next.cid, _ = r["cid"].(string)
			if p.next.cid == "" {
				return fmt.Errorf("applyWrites: result %d has no cid: %s", i, a)
			}
		}
		w.keys[p.key].acked, w.keys[p.key].pending = p.next, nil
	}
	w.stats.add("applyWrites ok")
	return w.ackCommit(a, "applyWrites", false)
}

func (w *worker) post(ctx context.Context, c *xrpcClient) error {
	a, err := w.call(ctx, c, "com.atproto.repo.createRecord", map[string]any{
		"repo": w.acct.did, "collection": postCollection,
		"record": map[string]any{"$type": postCollection, "text": fmt.Sprintf("post %d/%d", w.id, w.n), "createdAt": time.Now().UTC().Format(time.RFC3339Nano)},
	})
	w.n++
	if err != nil {
		w.stats.add("post unknown")
		return w.lost(err)
	}
	if a.Status != 200 {
		return fmt.Errorf("post: %s", a)
	}
	uri, _ := a.JSON()["uri"].(string)
	c2, _ := a.JSON()["cid"].(string)
	rkey := uri[strings.LastIndex(uri, "/")+1:]
	if !strings.HasPrefix(uri, "at://"+w.acct.did+"/"+postCollection+"/") || c2 == "" {
		return fmt.Errorf("post: bad answer %s", a)
	}
	w.acct.mu.Lock()
	w.acct.posts[rkey] = c2
	w.acct.mu.Unlock()
	w.stats.add("post ok")
	return w.ackCommit(a, "post", false)
}

// run writes until ctx ends or the server stops answering.
func (w *worker) run(ctx context.Context, t *testing.T, c *xrpcClient) {
	for ctx.Err() == nil {
		err := w.step(ctx, c)
		if err == errTransport {
			<-ctx.Done() // the server is dead: wait for the round to end
			return
		}
		if err != nil {
			t.Errorf("worker %d (%s): %v", w.id, w.acct.name, err)
			<-ctx.Done()
			return
		}
	}
}

// TestCrashRecovery: SIGKILL of the pds binary during concurrent writes loses no acknowledged write, leaves
// repositories that verify, never moves a commit rev backwards, and keeps the firehose complete and in order.
func TestCrashRecovery(t *testing.T) {
	cfg := loadCrashConfig(t)
	began := time.Now()
	tmp := t.TempDir()
	bin := buildPDS(t, tmp)
	plcURL := testplc.Start(t)
	srv := newPDSProcess(bin, filepath.Join(tmp, "data"), plcURL, freePort(t))
	t.Cleanup(srv.kill)
	srv.start(t)
	t.Logf("%.1fs: built and started", time.Since(began).Seconds())

	ctx := context.Background()
	anon := newClient(srv.URL, "")
	var accounts []*account
	for i := range numAccounts {
		name := fmt.Sprintf("crash%d", i)
		a, err := anon.call(ctx, "com.atproto.server.createAccount", nil, map[string]any{
			"handle": name + ".test", "email": name + "@example.com", "password": "password-" + name,
		})
		if err != nil || a.Status != 200 {
			t.Fatalf("createAccount %s: %v %v", name, err, a)
		}
		acct := &account{name: name, acked: map[string]string{}, posts: map[string]string{}}
		acct.did, _ = a.JSON()["did"].(string)
		acct.token, _ = a.JSON()["accessJwt"].(string)
		accounts = append(accounts, acct)
	}

	stats := &tally{}
	var workers []*worker
	for i := range numAccounts * workersPerAccount {
		workers = append(workers, &worker{
			id: i, acct: accounts[i%numAccounts], keys: map[string]*keyModel{}, stats: stats,
			rnd: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(i))),
		})
	}

	for round := 1; round <= cfg.rounds; round++ {
		rctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for _, w := range workers {
			c := newClient(srv.URL, w.acct.token)
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.run(rctx, t, c)
			}()
		}
		// Kill at a random moment while every worker is writing.
		time.Sleep(cfg.roundDur/2 + time.Duration(rand.Int64N(int64(cfg.roundDur/2))))
		killedAt := time.Now()
		srv.kill()
		cancel()
		wg.Wait()
		recent := 0
		var slowest time.Duration
		for _, w := range workers {
			if killedAt.Sub(w.lastAck) < 100*time.Millisecond {
				recent++
			}
			slowest = max(slowest, w.slowest)
			w.slowest = 0
			// Only the kill may cut a request off: a live server that drops or stalls a write is a bug.
			if !w.lostAt.IsZero() && w.lostAt.Before(killedAt) {
				t.Errorf("round %d: worker %d got no answer %s before the kill: %v", round, w.id, killedAt.Sub(w.lostAt), w.lostErr)
			}
			w.lostAt, w.lostErr = time.Time{}, nil
		}
		t.Logf("%.1fs: round %d: killed; %d of %d writers had a write acknowledged in the last 100ms; slowest write %s; totals so far %s",
			time.Since(began).Seconds(), round, recent, len(workers), slowest.Round(time.Millisecond), stats)
		if t.Failed() {
			t.FailNow()
		}

		srv.start(t)
		// No acknowledged commit is lost and the head never goes back.
		for _, a := range accounts {
			checkHead(t, anon, a)
		}
	}

	for _, a := range accounts {
		checkRecords(t, anon, a, workers)
		checkExport(t, anon, a, plcURL)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%.1fs: records and exports checked", time.Since(began).Seconds())
	checkFirehose(t, srv, accounts, plcURL)
	t.Logf("%.1fs: firehose checked", time.Since(began).Seconds())
	if errs := srv.logLines(func(l string) bool { return strings.Contains(l, "level=ERROR") }); len(errs) > 0 {
		t.Logf("server error log lines (%d):\n%s", len(errs), strings.Join(errs[:min(len(errs), 20)], "\n"))
	}
}

// checkHead: the repo head is at or after every acknowledged commit.
func checkHead(t *testing.T, c *xrpcClient, a *account) (headCID, headRev string) {
	t.Helper()
	ans, err := c.call(context.Background(), "com.atproto.sync.getLatestCommit", url.Values{"did": {a.did}}, nil)
	if err != nil || ans.Status != 200 {
		t.Fatalf("%s getLatestCommit: %v %v", a.name, err, ans)
	}
	headCID, _ = ans.JSON()["cid"].(string)
	headRev, _ = ans.JSON()["rev"].(string)
	a.mu.Lock()
	defer a.mu.Unlock()
	if headRev < a.maxRev {
		t.Fatalf("%s: head rev %s is before the acknowledged rev %s: acknowledged commits lost", a.name, headRev, a.maxRev)
	}
	if headRev == a.maxRev && headCID != a.acked[a.maxRev] {
		t.Fatalf("%s: head %s at rev %s, but the acknowledged commit of that rev is %s", a.name, headCID, headRev, a.acked[a.maxRev])
	}
	return headCID, headRev
}

// checkRecords: every key holds one of its possible states; every acknowledged post is there.
func checkRecords(t *testing.T, c *xrpcClient, a *account, workers []*worker) {
	t.Helper()
	ctx := context.Background()
	listed := listAll(t, c, a.did, itemCollection)
	checked, bad := 0, 0
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf(format, args...)
		if bad++; bad >= 20 {
			t.Fatalf("%s: stopping after %d bad records", a.name, bad)
		}
	}
	for _, w := range workers {
		if w.acct != a {
			continue
		}
		for _, k := range w.order {
			m := w.keys[k]
			got, ok := listed[k]
			delete(listed, k)
			var gotState state
			if ok {
				gotState = state{live: true, cid: got.cid, n: got.n}
			}
			if !matchesOne(gotState, m.possible()) {
				fail("%s %s/%s: is %v; possible after the last acknowledged write: %v", a.name, itemCollection, k, gotState, m.possible())
			}
			if len(m.pending) == 0 {
				// Settled keys: getRecord agrees (same CID, or RecordNotFound after an acknowledged delete).
				ans, err := c.call(ctx, "com.atproto.repo.getRecord", url.Values{"repo": {a.did}, "collection": {itemCollection}, "rkey": {k}}, nil)
				switch {
				case err != nil:
					t.Fatalf("getRecord: %v", err)
				case m.acked.live && (ans.Status != 200 || ans.JSON()["cid"] != m.acked.cid):
					fail("%s acknowledged %s/%s (%v): getRecord %s", a.name, itemCollection, k, m.acked, ans)
				case !m.acked.live && (ans.Status != 400 || ans.JSON()["error"] != "RecordNotFound"):
					fail("%s %s/%s deleted (acknowledged): getRecord %s", a.name, itemCollection, k, ans)
				}
			}
			checked++
		}
	}
	for k, v := range listed {
		fail("%s %s/%s: record n=%d that no writer wrote", a.name, itemCollection, k, v.n)
	}
	a.mu.Lock()
	posts := make(map[string]string, len(a.posts))
	for k, v := range a.posts {
		posts[k] = v
	}
	a.mu.Unlock()
	for rkey, want := range posts {
		ans, err := c.call(ctx, "com.atproto.repo.getRecord", url.Values{"repo": {a.did}, "collection": {postCollection}, "rkey": {rkey}}, nil)
		if err != nil || ans.Status != 200 {
			fail("%s acknowledged post %s: %v %v", a.name, rkey, err, ans)
			continue
		}
		if got, _ := ans.JSON()["cid"].(string); got != want {
			fail("%s acknowledged post %s: cid %s, want %s", a.name, rkey, got, want)
		}
	}
	t.Logf("%s: %d keys and %d acknowledged posts checked, %d acknowledged commits", a.name, checked, len(posts), len(a.acked))
}

func matchesOne(got state, possible []state) bool {
	for _, p := range possible {
		if got.live != p.live {
			continue
		}
		if !got.live {
			return true
		}
		if got.n == p.n && (p.cid == "" || p.cid == got.cid) {
			return true
		}
	}
	return false
}

type listedRecord struct {
	cid string
	n   int64
}

// listAll pages through listRecords.
func listAll(t *testing.T, c *xrpcClient, did, collection string) map[string]listedRecord {
	t.Helper()
	out := map[string]listedRecord{}
	cursor := ""
	for {
		params := url.Values{"repo": {did}, "collection": {collection}, "limit": {"100"}}
		if cursor != "" {
			params.Set("cursor", cursor)
		}
		ans, err := c.call(context.Background(), "com.atproto.repo.listRecords", params, nil)
		if err != nil || ans.Status != 200 {
			t.Fatalf("listRecords %s: %v %v", did, err, ans)
		}
		m := ans.JSON()
		recs, _ := m["records"].([]any)
		for _, r := range recs {
			rm, _ := r.(map[string]any)
			uri, _ := rm["uri"].(string)
			cidStr, _ := rm["cid"].(string)
			val, _ := rm["value"].(map[string]any)
			n, _ := val["n"].(float64)
			out[uri[strings.LastIndex(uri, "/")+1:]] = listedRecord{cid: cidStr, n: int64(n)}
		}
		cursor, _ = m["cursor"].(string)
		if cursor == "" || len(recs) == 0 {
			return out
		}
	}
}

// checkExport: sync.getRepo gives a CAR that indigo loads, whose commit is signed with the key in the PLC
// document, whose MST rebuilt from its leaves has the commit's data root, and whose records are what
// listRecords says.
func checkExport(t *testing.T, c *xrpcClient, a *account, plcURL string) {
	t.Helper()
	ctx := context.Background()
	headCID, headRev := checkHead(t, c, a)
	ans, err := c.call(ctx, "com.atproto.sync.getRepo", url.Values{"did": {a.did}}, nil)
	if err != nil || ans.Status != 200 {
		t.Fatalf("%s getRepo: %v %v", a.name, err, ans)
	}
	commit, rp, err := atrepo.LoadRepoFromCAR(ctx, bytes.NewReader(ans.Body))
	if err != nil {
		t.Fatalf("%s: exported CAR does not load: %v", a.name, err)
	}
	if commit.DID != a.did || commit.Rev != headRev {
		t.Fatalf("%s: exported commit did %s rev %s, want %s %s", a.name, commit.DID, commit.Rev, a.did, headRev)
	}
	pub := signingKey(t, plcURL, a.did)
	if err := commit.VerifySignature(pub); err != nil {
		t.Fatalf("%s: commit signature: %v", a.name, err)
	}
	leaves := map[string]string{}
	tree := mst.NewEmptyTree()
	if err := rp.MST.Walk(func(key []byte, val cid.Cid) error {
		leaves[string(key)] = val.String()
		_, err := tree.Insert(key, val)
		return err
	}); err != nil {
		t.Fatalf("%s: walking the exported MST: %v", a.name, err)
	}
	rebuilt, err := tree.RootCID()
	if err != nil {
		t.Fatal(err)
	}
	if *rebuilt != commit.Data {
		t.Fatalf("%s: MST rebuilt from the leaves has root %s, the commit says %s", a.name, rebuilt, commit.Data)
	}
	want := map[string]string{}
	for k, v := range listAll(t, c, a.did, itemCollection) {
		want[itemCollection+"/"+k] = v.cid
	}
	for k, v := range listAll(t, c, a.did, postCollection) {
		want[postCollection+"/"+k] = v.cid
	}
	if len(leaves) != len(want) {
		t.Errorf("%s: exported repo has %d records, listRecords %d", a.name, len(leaves), len(want))
	}
	bad := 0
	for k, v := range want {
		if leaves[k] != v && bad < 5 {
			bad++
			t.Errorf("%s: %s is %q in the export, %q in listRecords", a.name, k, leaves[k], v)
		}
	}
	t.Logf("%s: export verified: rev %s, commit %s, %d records", a.name, headRev, headCID, len(leaves))
}

func signingKey(t *testing.T, plcURL, did string) atcrypto.PublicKey {
	t.Helper()
	data, err := (&plc.Client{URL: plcURL}).GetDocumentData(context.Background(), did)
	if err != nil {
		t.Fatalf("PLC document of %s: %v", did, err)
	}
	pub, err := atcrypto.ParsePublicDIDKey(data.SigningKey())
	if err != nil {
		t.Fatalf("PLC signing key of %s: %v", did, err)
	}
	return pub
}

// sortedRevs returns an account's acknowledged revs in order.
func (a *account) sortedRevs() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	revs := make([]string, 0, len(a.acked))
	for r := range a.acked {
		revs = append(revs, r)
	}
	sort.Strings(revs)
	return revs
}
