package crashtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/atdata"
	atrepo "github.com/bluesky-social/indigo/atproto/repo"
	"github.com/gorilla/websocket"
	cbg "github.com/whyrusleeping/cbor-gen"
)

// firehoseTimeout bounds reading the whole stream from cursor 0.
const firehoseTimeout = 60 * time.Second

// streamCommit is what the check keeps of one #commit.
type streamCommit struct {
	seq    int64
	rev    string
	since  string
	commit string
	ops    []*comatproto.SyncSubscribeRepos_RepoOp
	sync   bool // a #sync: the repo is at rev, reached by commits the stream does not carry
}

// checkFirehose subscribes from cursor 0 after the last restart and checks the firehose invariant of the crash
// test: every acknowledged commit is on the stream, in commit order per account; seq strictly increases without
// gaps; each #commit's since is the previous rev of its account; every event is a commit the repo had (the
// chain ends at the repo's head, each commit is signed by the account key, and replaying the ops gives exactly
// the records of the head).
func checkFirehose(t *testing.T, srv *pdsProcess, accounts []*account, plcURL string) {
	t.Helper()
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/xrpc/com.atproto.sync.subscribeRepos?cursor=0"
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := dialer.Dial(wsURL, nil)
	if err != nil {
		status := 0
		var body []byte
		if resp != nil {
			status = resp.StatusCode
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		t.Fatalf("subscribeRepos: %v (HTTP %d %s)", err, status, bytes.TrimSpace(body))
	}
	defer conn.Close()

	type acctState struct {
		*account
		headCID, headRev string
		key              atcrypto.PublicKey
		commits          []streamCommit
		prevRev          string // rev of the account's previous #commit or #sync on the stream
		done             bool
	}
	byDID := map[string]*acctState{}
	for _, a := range accounts {
		headCID, headRev := checkHead(t, newClient(srv.URL, ""), a)
		byDID[a.did] = &acctState{account: a, headCID: headCID, headRev: headRev, key: signingKey(t, plcURL, a.did)}
	}
	pending := len(byDID)
	var lastSeq int64
	events := 0
	deadline := time.Now().Add(firehoseTimeout)
	conn.SetReadDeadline(deadline)
	for pending > 0 {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			var missing []string
			for _, st := range byDID {
				if !st.done {
					last := "none"
					if n := len(st.commits); n > 0 {
						last = st.commits[n-1].rev
					}
					missing = append(missing, fmt.Sprintf("%s (head %s, last streamed commit %s)", st.name, st.headRev, last))
				}
			}
			t.Fatalf("firehose: read after %d events (seq %d): %v; the stream never reached the head of %v", events, lastSeq, err, missing)
		}
		events++
		op, typ, body, err := decodeFrame(msg)
		if err != nil {
			t.Fatalf("firehose: frame %d: %v", events, err)
		}
		if op != 1 {
			ef, _ := atdata.UnmarshalCBOR(body)
			t.Fatalf("firehose: error frame (op %d) after seq %d: %v", op, lastSeq, ef)
		}
		var seq int64
		var did, rev string
		switch typ {
		case "#commit":
			var evt comatproto.SyncSubscribeRepos_Commit
			if err := evt.UnmarshalCBOR(bytes.NewReader(body)); err != nil {
				t.Fatalf("firehose: #commit after seq %d: %v", lastSeq, err)
			}
			seq, did, rev = evt.Seq, evt.Repo, evt.Rev
			st := byDID[did]
			if st == nil {
				break
			}
			since := ""
			if evt.Since != nil {
				since = *evt.Since
			}
			if since != st.prevRev {
				t.Errorf("firehose: %s #commit seq %d rev %s has since %q, the previous rev on the stream is %q", st.name, seq, rev, since, st.prevRev)
			}
			if rev <= st.prevRev {
				t.Errorf("firehose: %s #commit seq %d rev %s is not after the previous rev %s", st.name, seq, rev, st.prevRev)
			}
			if st.done {
				t.Errorf("firehose: %s #commit seq %d rev %s is after the repo's head %s", st.name, seq, rev, st.headRev)
			}
			c, root, err := atrepo.LoadCommitFromCAR(context.Background(), bytes.NewReader(evt.Blocks))
			if err != nil {
				t.Errorf("firehose: %s #commit seq %d: blocks: %v", st.name, seq, err)
			} else if root.String() != evt.Commit.String() || c.Rev != rev || c.DID != did {
				t.Errorf("firehose: %s #commit seq %d: CAR root %s rev %s did %s, event says %s %s %s", st.name, seq, root, c.Rev, c.DID, evt.Commit, rev, did)
			} else if err := c.VerifySignature(st.key); err != nil {
				t.Errorf("firehose: %s #commit seq %d: signature: %v", st.name, seq, err)
			}
			st.commits = append(st.commits, streamCommit{seq: seq, rev: rev, since: since, commit: evt.Commit.String(), ops: evt.Ops})
			st.prevRev = rev
			if rev == st.headRev {
				if evt.Commit.String() != st.headCID {
					t.Errorf("firehose: %s #commit at the head rev %s is commit %s, the repo's head is %s", st.name, rev, evt.Commit, st.headCID)
				}
				st.done = true
				pending--
			}
		case "#sync":
			var evt comatproto.SyncSubscribeRepos_Sync
			if err := evt.UnmarshalCBOR(bytes.NewReader(body)); err != nil {
				t.Fatalf("firehose: #sync after seq %d: %v", lastSeq, err)
			}
			seq, did, rev = evt.Seq, evt.Did, evt.Rev
			if st := byDID[did]; st != nil {
				if rev < st.prevRev {
					t.Errorf("firehose: %s #sync seq %d rev %s is before the previous rev %s", st.name, seq, rev, st.prevRev)
				}
				st.prevRev = rev
				st.commits = append(st.commits, streamCommit{seq: seq, rev: rev, sync: true})
				// A commit the repo stored but the log never got (killed in between: not acknowledged) is
				// announced with #sync at the next start; it may be the head.
				if rev == st.headRev && !st.done {
					if c, root, err := atrepo.LoadCommitFromCAR(context.Background(), bytes.NewReader(evt.Blocks)); err != nil || root.String() != st.headCID || c.Rev != rev {
						t.Errorf("firehose: %s #sync at the head rev %s: commit %v (%v), the repo's head is %s", st.name, rev, root, err, st.headCID)
					}
					st.done = true
					pending--
				}
			}
		case "#identity":
			var evt comatproto.SyncSubscribeRepos_Identity
			if err := evt.UnmarshalCBOR(bytes.NewReader(body)); err != nil {
				t.Fatalf("firehose: #identity after seq %d: %v", lastSeq, err)
			}
			seq = evt.Seq
		case "#account":
			var evt comatproto.SyncSubscribeRepos_Account
			if err := evt.UnmarshalCBOR(bytes.NewReader(body)); err != nil {
				t.Fatalf("firehose: #account after seq %d: %v", lastSeq, err)
			}
			seq = evt.Seq
		case "#info":
			var evt comatproto.SyncSubscribeRepos_Info
			evt.UnmarshalCBOR(bytes.NewReader(body))
			t.Fatalf("firehose: #info %s after seq %d: nothing was pruned, replay from 0 must be complete", evt.Name, lastSeq)
		default:
			t.Fatalf("firehose: unknown message type %q after seq %d", typ, lastSeq)
		}
		if lastSeq == 0 && seq != 1 {
			t.Errorf("firehose: replay from cursor 0 starts at seq %d, want 1", seq)
		} else if lastSeq != 0 && seq != lastSeq+1 {
			t.Errorf("firehose: seq %d follows seq %d (gap or disorder)", seq, lastSeq)
		}
		lastSeq = seq
		if t.Failed() && events > 100000 {
			t.FailNow()
		}
	}

	for _, st := range byDID {
		onStream := map[string]string{}
		for _, c := range st.commits {
			if !c.sync {
				onStream[c.rev] = c.commit
			}
		}
		missing := 0
		for _, rev := range st.sortedRevs() {
			st.mu.Lock()
			want := st.acked[rev]
			st.mu.Unlock()
			got, ok := onStream[rev]
			switch {
			case !ok:
				missing++
				if missing <= 5 {
					t.Errorf("firehose: %s acknowledged commit rev %s (%s) is not on the stream", st.name, rev, want)
				}
			case got != want:
				t.Errorf("firehose: %s rev %s is commit %s on the stream, %s when acknowledged", st.name, rev, got, want)
			}
		}
		if missing > 5 {
			t.Errorf("firehose: %s: %d acknowledged commits missing in all", st.name, missing)
		}
		checkReplay(t, srv, st.account, st.commits)
		syncs := 0
		for _, c := range st.commits {
			if c.sync {
				syncs++
			}
		}
		t.Logf("firehose: %s: %d commits and %d #sync on the stream (%d commits acknowledged), chain ends at the head %s",
			st.name, len(st.commits)-syncs, syncs, len(st.sortedRevs()), st.headRev)
	}
	t.Logf("firehose: %d events, seq 1..%d without gaps", events, lastSeq)
}

// checkReplay: applying every streamed op in order gives exactly the records of the exported head, and each
// update/delete names the record's previous CID (sync 1.1).
func checkReplay(t *testing.T, srv *pdsProcess, a *account, commits []streamCommit) {
	t.Helper()
	// After a #sync (commits the process stored but died before logging, never acknowledged, announced at the
	// next start) the stream alone no longer determines the records: a consumer re-fetches the repo. The ops
	// are then applied without the exists/prev checks, and at the end only the paths written after the last
	// #sync are compared with the repo.
	state := map[string]string{}
	synced := false
	touched := map[string]bool{} // paths written since the last #sync
	for _, c := range commits {
		if c.sync {
			synced = true
			touched = map[string]bool{}
			continue
		}
		for _, op := range c.ops {
			touched[op.Path] = true
			cur, exists := state[op.Path]
			prev := ""
			if op.Prev != nil {
				prev = op.Prev.String()
			}
			switch op.Action {
			case "create":
				if exists && !synced {
					t.Errorf("firehose: %s rev %s creates %s, which exists", a.name, c.rev, op.Path)
				}
			case "update", "delete":
				if (!exists || prev != cur) && !synced {
					t.Errorf("firehose: %s rev %s %ss %s with prev %q; replayed state %q (exists %v)", a.name, c.rev, op.Action, op.Path, prev, cur, exists)
				}
			default:
				t.Errorf("firehose: %s rev %s: op action %q", a.name, c.rev, op.Action)
			}
			if op.Action == "delete" {
				delete(state, op.Path)
			} else if op.Cid != nil {
				state[op.Path] = op.Cid.String()
			} else {
				t.Errorf("firehose: %s rev %s: %s of %s without cid", a.name, c.rev, op.Action, op.Path)
			}
		}
	}
	c := newClient(srv.URL, "")
	want := map[string]string{}
	for k, v := range listAll(t, c, a.did, itemCollection) {
		want[itemCollection+"/"+k] = v.cid
	}
	for k, v := range listAll(t, c, a.did, postCollection) {
		want[postCollection+"/"+k] = v.cid
	}
	if synced {
		for k := range want {
			if !touched[k] {
				delete(want, k)
			}
		}
		for k := range state {
			if !touched[k] {
				delete(state, k)
			}
		}
	}
	if len(state) != len(want) {
		t.Errorf("firehose: %s: replaying the stream gives %d records, the repo has %d", a.name, len(state), len(want))
	}
	bad := 0
	for k, v := range want {
		if state[k] != v && bad < 5 {
			bad++
			t.Errorf("firehose: %s: %s is %q after replaying the stream, %q in the repo", a.name, k, state[k], v)
		}
	}
}

// decodeFrame splits a firehose frame into its header (op, t) and body bytes.
func decodeFrame(msg []byte) (op int64, typ string, body []byte, err error) {
	br := bytes.NewReader(msg)
	cr := cbg.NewCborReader(br)
	maj, n, err := cr.ReadHeader()
	if err != nil {
		return 0, "", nil, fmt.Errorf("header: %w", err)
	}
	if maj != cbg.MajMap {
		return 0, "", nil, fmt.Errorf("header: major type %d, want a map", maj)
	}
	for range n {
		key, err := cbg.ReadString(cr)
		if err != nil {
			return 0, "", nil, fmt.Errorf("header key: %w", err)
		}
		switch key {
		case "op":
			m, v, err := cr.ReadHeader()
			if err != nil {
				return 0, "", nil, err
			}
			switch m {
			case cbg.MajUnsignedInt:
				op = int64(v)
			case cbg.MajNegativeInt:
				op = -1 - int64(v)
			default:
				return 0, "", nil, fmt.Errorf("header op: major type %d", m)
			}
		case "t":
			if typ, err = cbg.ReadString(cr); err != nil {
				return 0, "", nil, fmt.Errorf("header t: %w", err)
			}
		default:
			return 0, "", nil, fmt.Errorf("header: unexpected key %q", key)
		}
	}
	return op, typ, msg[len(msg)-br.Len():], nil
}
