package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/sequencer"
	"github.com/pdsgo/pds/repo"
)

// A seeded directory is what a server leaves after real signups and a clean stop: the server starts on it,
// seeded accounts log in with the seed password, read and write; and, compared with an account that signed up
// over HTTP on the same server, each has the same firehose events, recovery state and outbox.
func TestSeedIsWhatACleanStopLeaves(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	getenv := func(k string) string {
		if k == "PDS_HOSTNAME" {
			return "localhost"
		}
		return ""
	}
	// durable: the fsync-relaxing connection hook is process-wide and would reach the test server too.
	f := &seedFlags{data: dir, accounts: 12, prefix: "seed", password: "pw-seed", workers: 4, durable: true}
	res, err := seed(ctx, f, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Created != 12 || res.Existing != 0 {
		t.Fatalf("first seed: %+v", res)
	}
	f.accounts = 15
	if res, err = seed(ctx, f, getenv, io.Discard); err != nil {
		t.Fatal(err)
	}
	if res.Created != 3 || res.Existing != 12 {
		t.Fatalf("top-up seed: %+v, want 3 created and 12 existing", res)
	}

	p := testpds.Start(t, testpds.Options{DataDir: dir})
	real := p.CreateAccount("realsignup")
	writer := seedHandle("seed", 7, ".test")
	login := p.Procedure("com.atproto.server.createSession", map[string]any{"identifier": writer, "password": "pw-seed"}, "")
	if login.Status != http.StatusOK {
		t.Fatalf("createSession as %s with the seed password: %s", writer, login)
	}
	writerDID, _ := login.JSON()["did"].(string)
	token, _ := login.JSON()["accessJwt"].(string)
	if r := p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": writerDID, "collection": "app.bsky.feed.post",
		"record": map[string]any{"text": "hi", "createdAt": "2026-11-26T00:00:00Z"}}, token); r.Status != http.StatusOK {
		t.Fatalf("createRecord as %s: %s", writer, r)
	}
	if r := p.Procedure("com.atproto.server.createSession", map[string]any{"identifier": writer, "password": "wrong"}, ""); r.Status != http.StatusUnauthorized {
		t.Fatalf("createSession with a wrong password: %s", r)
	}
	seeded := map[string]string{} // handle -> DID
	for i := range 15 {
		h := seedHandle("seed", i, ".test")
		r := p.Query("com.atproto.identity.resolveHandle", url.Values{"handle": {h}}, "")
		did, _ := r.JSON()["did"].(string)
		if _, err := syntax.ParseDID(did); r.Status != http.StatusOK || err != nil || len(did) != len("did:plc:")+24 {
			t.Fatalf("resolveHandle %s: %s", h, r)
		}
		if r := p.Query("com.atproto.sync.getLatestCommit", url.Values{"did": {did}}, ""); r.Status != http.StatusOK {
			t.Fatalf("getLatestCommit %s: %s", did, r)
		}
		seeded[h] = did
	}
	p.Stop() // a clean stop

	accounts, err := accountstore.Open(ctx, filepath.Join(dir, "account.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer accounts.Close()
	seq, err := sequencer.Open(ctx, filepath.Join(dir, "sequencer.sqlite"), sequencer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Close()
	repos, err := repo.OpenStore(filepath.Join(dir, "actors"), repo.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer repos.Close()
	if d, err := seq.Dirty(ctx); err != nil || len(d) != 0 {
		t.Fatalf("accounts marked for recovery after a clean stop: %v %v", d, err)
	}
	events, err := seq.Events(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string][]string{}
	for _, e := range events {
		types[e.DID.String()] = append(types[e.DID.String()], e.Type)
	}
	// state is what start-up and recovery look at for one account.
	type state struct {
		Events  []string
		Outbox  int
		InSync  bool // the last sequenced rev is the repo head
		Account bool
	}
	stateOf := func(did string) state {
		t.Helper()
		var st state
		st.Events = types[did]
		r, err := repos.Repo(ctx, syntax.DID(did))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Release()
		pending, err := r.PendingEvents(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		st.Outbox = len(pending)
		head, err := r.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		last, err := seq.LastRev(ctx, syntax.DID(did))
		if err != nil {
			t.Fatal(err)
		}
		st.InSync = last == head.Rev
		_, err = accounts.AccountByDID(ctx, syntax.DID(did))
		st.Account = err == nil
		return st
	}
	want := stateOf(real.DID)
	if !slices.Equal(want.Events, []string{"#identity", "#account", "#commit", "#sync"}) || !want.InSync || !want.Account {
		t.Fatalf("the signup over HTTP left %+v", want)
	}
	for h, did := range seeded {
		if h == writer {
			continue
		}
		if got := stateOf(did); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s (%s): %+v, a real signup left %+v", h, did, got, want)
		}
	}
	if got := stateOf(seeded[writer]); !got.InSync || len(got.Events) != 5 || got.Events[4] != "#commit" {
		t.Errorf("the seeded account that wrote: %+v", got)
	}
}
