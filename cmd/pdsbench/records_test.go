package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	atrepo "github.com/bluesky-social/indigo/atproto/repo"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/gorilla/websocket"
	"github.com/ipfs/go-cid"

	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/pds/accountstore"
)

// A repository filled by `pdsbench seed -records` is one a server serves and extends: getRepo gives a verified
// repository of exactly N records signed with the account's key; the firehose carries one #sync of that head;
// `pdsbench -login` writes as the account, and its commits chain on the #sync.
func TestSeedRecordsServesAndChains(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	getenv := func(k string) string {
		if k == "PDS_HOSTNAME" {
			return "localhost"
		}
		return ""
	}
	const n = 500
	// durable: the fsync-relaxing connection hook is process-wide and would reach the test server too.
	f := &seedFlags{data: dir, accounts: 2, records: n, prefix: "big", password: "pw-big", workers: 2, durable: true}
	res, err := seed(ctx, f, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Created != 2 || res.Records != n {
		t.Fatalf("seed: %+v, want 2 accounts and %d records", res, n)
	}
	// A rerun tops up: nothing to add (and it would refuse a directory with an account marked for recovery).
	if res, err = seed(ctx, f, getenv, io.Discard); err != nil || res.Records != 0 || res.Existing != 2 {
		t.Fatalf("rerun: %+v %v", res, err)
	}
	handle := seedHandle("big", 0, ".test")
	accounts, err := accountstore.Open(ctx, filepath.Join(dir, "account.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	acct, err := accounts.AccountByHandle(ctx, handle)
	accounts.Close()
	if err != nil {
		t.Fatal(err)
	}
	key, err := acct.Signer()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := key.PublicKey()
	if err != nil {
		t.Fatal(err)
	}

	p := testpds.Start(t, testpds.Options{DataDir: dir})
	// The whole repository, verified: signature, structure, every record block present.
	resp := p.Query("com.atproto.sync.getRepo", url.Values{"did": {acct.DID.String()}}, "")
	if resp.Status != 200 {
		t.Fatalf("getRepo: %s", resp)
	}
	commit, rp, err := atrepo.LoadRepoFromCAR(ctx, bytes.NewReader(resp.Body))
	if err != nil {
		t.Fatal(err)
	}
	if err := commit.VerifySignature(pub); err != nil || commit.DID != acct.DID.String() {
		t.Fatalf("commit of %s signed by the account's key: %v (DID %s)", acct.DID, err, commit.DID)
	}
	var keys []string
	if err := rp.MST.Walk(func(k []byte, _ cid.Cid) error { keys = append(keys, string(k)); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != n {
		t.Fatalf("getRepo: %d records, want %d", len(keys), n)
	}
	for _, k := range keys {
		coll, rkey, _ := strings.Cut(k, "/")
		if _, _, err := rp.GetRecordBytes(ctx, syntax.NSID(coll), syntax.RecordKey(rkey)); err != nil {
			t.Fatalf("record %s: %v", k, err)
		}
	}

	// The load tool, logged in as the filled account, on a subscribed firehose.
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(p.URL, "http")+"/xrpc/com.atproto.sync.subscribeRepos?cursor=0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	u, _ := url.Parse(p.URL)
	bf := &benchFlags{url: "http://127.0.0.1:" + u.Port(), name: "big", login: handle + ":pw-big", cfg: Config{
		Clients: 1, Duration: 200 * time.Millisecond, Count: 10, Warmup: 2, Scenarios: []string{scCreate1}}}
	out, err := bench(ctx, bf, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	r := scenario(out, scCreate1)
	if out.Setup.LoginDID != acct.DID.String() || out.Setup.FirstWriteMS <= 0 || r == nil || r.Ops == 0 || r.Errors != 0 {
		t.Fatalf("bench -login: setup %+v, create_1 %+v", out.Setup, r)
	}
	writes := 1 + bf.cfg.Warmup + r.Ops

	// This account's events: the signup's four, one #sync of the filled head, then a chain of #commits on it.
	var types []string
	var syncCommit *atrepo.Commit
	lastRev := ""
	ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	for commits := 0; commits < writes; {
		_, frame, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("firehose after %v: %v", types, err)
		}
		fr, err := scanFrame(frame)
		if err != nil || fr.Op != 1 {
			t.Fatalf("frame %+v %v", fr, err)
		}
		body := bytes.NewReader(frame[fr.Body:])
		var did string
		var syncEvt *comatproto.SyncSubscribeRepos_Sync
		var commitEvt *comatproto.SyncSubscribeRepos_Commit
		switch fr.Type {
		case "#identity":
			var evt comatproto.SyncSubscribeRepos_Identity
			err, did = evt.UnmarshalCBOR(body), evt.Did
		case "#account":
			var evt comatproto.SyncSubscribeRepos_Account
			err, did = evt.UnmarshalCBOR(body), evt.Did
		case "#sync":
			syncEvt = new(comatproto.SyncSubscribeRepos_Sync)
			err, did = syncEvt.UnmarshalCBOR(body), syncEvt.Did
		case "#commit":
			commitEvt = new(comatproto.SyncSubscribeRepos_Commit)
			err, did = commitEvt.UnmarshalCBOR(body), commitEvt.Repo
		default:
			t.Fatalf("unexpected %s frame", fr.Type)
		}
		if err != nil {
			t.Fatalf("%s: %v", fr.Type, err)
		}
		if did != acct.DID.String() {
			continue
		}
		types = append(types, fr.Type)
		switch i := len(types) - 1; {
		case i < 4:
		case i == 4:
			if syncEvt == nil {
				t.Fatalf("after the signup: %v, want the fill's #sync", types)
			}
			if syncCommit, _, err = atrepo.LoadCommitFromCAR(ctx, bytes.NewReader(syncEvt.Blocks)); err != nil {
				t.Fatal(err)
			}
			lastRev = syncEvt.Rev
		default:
			if commitEvt == nil {
				t.Fatalf("after the fill's #sync: %v", types)
			}
			if commitEvt.Since == nil || *commitEvt.Since != lastRev {
				t.Fatalf("#commit %s after %v: since %v, want %s", commitEvt.Rev, types, commitEvt.Since, lastRev)
			}
			if i == 5 && (commitEvt.PrevData == nil || cid.Cid(*commitEvt.PrevData) != syncCommit.Data) {
				t.Fatalf("first #commit after the #sync: prevData %v, want the #sync's data %s", commitEvt.PrevData, syncCommit.Data)
			}
			lastRev = commitEvt.Rev
			commits++
		}
	}
	if syncCommit == nil || syncCommit.Rev != commit.Rev || syncCommit.Data != commit.Data {
		t.Fatalf("the #sync announces %+v, getRepo gave rev %s data %s", syncCommit, commit.Rev, commit.Data)
	}
	if got := fmt.Sprint(types[:5]); got != "[#identity #account #commit #sync #sync]" {
		t.Fatalf("events before the writes: %s", got)
	}
}

func TestLoginFlagChecks(t *testing.T) {
	for _, args := range [][]string{
		{"-login", "big0000000.test:pw", "-scenarios", scGetRecord1}, // needs a read repo of its own
		{"-login", "big0000000.test:pw", "-scenarios", scCreateN},    // needs N accounts
		{"-login", "big0000000.test", "-scenarios", scCreate1},       // no password
	} {
		err := benchMain(append([]string{"-url", "http://127.0.0.1:9"}, args...))
		if err == nil || !strings.Contains(err.Error(), "-login") {
			t.Errorf("%v: %v", args, err)
		}
	}
}
