package plcserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pdsidentity "github.com/pdsgo/pds/identity"
	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/identity/plcserver"
	"github.com/pdsgo/pds/internal/testplc"
)

// clock is a settable clock for the embedded directory.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func submit(t *testing.T, base, did string, op any) answer {
	t.Helper()
	return do(t, "POST", base+"/"+did, "", mustJSON(t, op))
}

// TestRecoveryWindow moves the embedded directory's clock across the 72-hour
// window (the reference cannot be run with another clock).
func TestRecoveryWindow(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after time.Duration
		want  int
	}{
		{"71h59m after the disputed op", 71*time.Hour + 59*time.Minute, 200},
		{"72h after", 72 * time.Hour, 200},
		{"72h and 1ms after", 72*time.Hour + time.Millisecond, 400},
		{"a week after", 7 * 24 * time.Hour, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
			_, base := openDirectory(t, plcserver.Options{Now: clk.Now})
			f := newFixture(t)
			g := f.signOp(f.genesis("win.test"), f.rot)
			did := f.didOf(g)
			if a := submit(t, base, did, g); a.status != 200 {
				t.Fatalf("genesis: %d %s", a.status, a.body)
			}
			clk.Add(time.Hour)
			hijack, _ := g.Next(func(o *plc.Operation) { o.AlsoKnownAs = []string{"at://hijack.test"} })
			f.signOp(hijack, f.rec)
			if a := submit(t, base, did, hijack); a.status != 200 {
				t.Fatalf("hijack: %d %s", a.status, a.body)
			}
			clk.Add(time.Minute)
			hijack2, _ := hijack.Next(func(o *plc.Operation) { o.AlsoKnownAs = []string{"at://hijack2.test"} })
			f.signOp(hijack2, f.rec)
			if a := submit(t, base, did, hijack2); a.status != 200 {
				t.Fatalf("hijack2: %d %s", a.status, a.body)
			}
			clk.Add(tc.after - time.Minute)
			rec, _ := g.Next(func(o *plc.Operation) { o.AlsoKnownAs = []string{"at://recovered.test"} })
			f.signOp(rec, f.rot)
			a := submit(t, base, did, rec)
			if a.status != tc.want {
				t.Fatalf("recovery: %d %s, want %d", a.status, a.body, tc.want)
			}
			var audit []plc.LogEntry
			if err := json.Unmarshal(do(t, "GET", base+"/"+did+"/log/audit", "", nil).body, &audit); err != nil {
				t.Fatal(err)
			}
			var data plc.Data
			json.Unmarshal(do(t, "GET", base+"/"+did+"/data", "", nil).body, &data)
			if tc.want != 200 {
				if !strings.HasPrefix(a.message(), "Recovery operation occured outside of the allowed 72 hr recovery window. Time lapsed: ") {
					t.Errorf("message %q", a.message())
				}
				if len(audit) != 3 || audit[1].Nullified || audit[2].Nullified || data.Handle() != "hijack2.test" {
					t.Errorf("late recovery changed the log: %+v, data %+v", audit, data)
				}
				return
			}
			if len(audit) != 4 || audit[0].Nullified || !audit[1].Nullified || !audit[2].Nullified || audit[3].Nullified {
				t.Fatalf("audit after recovery: %+v", audit)
			}
			if data.Handle() != "recovered.test" {
				t.Errorf("handle after recovery %q", data.Handle())
			}
			var log []json.RawMessage
			json.Unmarshal(do(t, "GET", base+"/"+did+"/log", "", nil).body, &log)
			if len(log) != 2 {
				t.Errorf("/log has %d ops, want 2 (nullified ones left out)", len(log))
			}
			// The nullified branch cannot be extended.
			more, _ := hijack2.Next(nil)
			f.signOp(more, f.rec)
			if a := submit(t, base, did, more); a.status != 400 || a.message() != "Operations not correctly ordered" {
				t.Errorf("op on the nullified branch: %d %s", a.status, a.body)
			}
		})
	}
}

// clientLifecycle drives identity/plc.Client through a DID's life and
// returns what it observed, so that runs against two directories compare.
func clientLifecycle(t *testing.T, base string, f *fixture) []string {
	t.Helper()
	ctx := context.Background()
	c := &plc.Client{URL: base}
	var out []string
	note := func(step string, err error) {
		s := step + ": ok"
		var perr *plc.Error
		switch {
		case errors.As(err, &perr):
			s = step + ": HTTP " + http.StatusText(perr.StatusCode)
		case err != nil:
			s = step + ": " + err.Error()
		}
		out = append(out, s)
	}
	g := f.signOp(f.genesis("client.test"), f.rot)
	did := f.didOf(g)
	_, err := c.GetDocumentData(ctx, did)
	note("data before genesis is ErrNotFound="+boolStr(errors.Is(err, plc.ErrNotFound)), err)
	note("genesis", c.Submit(ctx, did, g))
	data, err := c.GetDocumentData(ctx, did)
	note("data", err)
	if err == nil {
		out = append(out, "handle "+data.Handle(), "pds "+data.PDSEndpoint(), "key "+data.SigningKey())
	}
	doc, err := c.ResolveDocument(ctx, did)
	note("document", err)
	if err == nil {
		note("document matches", pdsidentity.CheckDocument(doc, pdsidentity.Expect{DID: did, Handle: "client.test", SigningKey: f.sign.DIDKey(), PDSEndpoint: "http://localhost:2583"}))
	}
	last, err := c.GetLastOp(ctx, did)
	note("last", err)
	if err == nil {
		out = append(out, "last is genesis "+boolStr(last.Sig == g.Sig))
	}
	upd := plc.UpdateFrom(data, opCID(t, g), func(o *plc.Operation) { o.AlsoKnownAs = []string{"at://client2.test"} })
	f.signOp(upd, f.rot)
	note("update", c.Submit(ctx, did, upd))
	lc, err := c.LastCID(ctx, did)
	note("last cid is the update's "+boolStr(lc == opCID(t, upd)), err)
	bad := plc.UpdateFrom(data, opCID(t, upd), nil)
	f.signOp(bad, f.rogue)
	note("rogue update", c.Submit(ctx, did, bad))
	ts := f.signTomb(plc.NewTombstone(opCID(t, upd)), f.rec)
	note("tombstone", c.Submit(ctx, did, ts))
	_, err = c.GetDocumentData(ctx, did)
	note("data after tombstone is ErrNotFound="+boolStr(errors.Is(err, plc.ErrNotFound)), err)
	_, err = c.ResolveDocument(ctx, did)
	note("document after tombstone is ErrNotFound="+boolStr(errors.Is(err, plc.ErrNotFound)), err)
	_, err = c.GetLastOp(ctx, did)
	note("last after tombstone is ErrTombstoned="+boolStr(errors.Is(err, plc.ErrTombstoned)), err)
	log, err := c.GetAuditLog(ctx, did)
	note("audit", err)
	// Signatures are randomised, so CIDs differ between runs: compare each
	// with the CID computed here.
	ours := []string{opCID(t, g), opCID(t, upd), opCID(t, ts)}
	for i, e := range log {
		_, perr := e.Op()
		out = append(out, "audit "+string(rune('0'+i))+" cid matches="+boolStr(i < len(ours) && e.CID == ours[i])+
			" did matches="+boolStr(e.DID == did)+" nullified="+boolStr(e.Nullified)+" parses="+boolStr(perr == nil))
	}
	return out
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// TestStartLoopback: the directory serves itself on loopback until Close.
func TestStartLoopback(t *testing.T) {
	d, err := plcserver.Open(context.Background(), filepath.Join(t.TempDir(), "plc.sqlite"), plcserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	base, err := d.StartLoopback()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Errorf("base URL %q", base)
	}
	f := newFixture(t)
	g := f.signOp(f.genesis("loop.test"), f.rot)
	if err := (&plc.Client{URL: base}).Submit(context.Background(), f.didOf(g), g); err != nil {
		t.Fatal(err)
	}
	if _, err := d.StartLoopback(); err == nil {
		t.Error("second StartLoopback succeeded")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(base + "/_health"); err == nil {
		t.Error("still serving after Close")
	}
}

// TestClient: identity/plc.Client sees the same thing from both directories.
func TestClient(t *testing.T) {
	ref := testplc.Start(t)
	_, ours := openDirectory(t, plcserver.Options{})
	f := newFixture(t)
	want := clientLifecycle(t, ref, f)
	got := clientLifecycle(t, ours, f)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("embedded:\n%s\n\nreference:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, must := range []string{"genesis: ok", "document matches: ok", "update: ok", "rogue update: HTTP Bad Request", "tombstone: ok"} {
		if !strings.Contains(strings.Join(got, "\n"), must) {
			t.Errorf("missing %q in\n%s", must, strings.Join(got, "\n"))
		}
	}
}

// TestDocument checks the document format of the current reference
// (Multikey), which the installed reference predates.
func TestDocument(t *testing.T) {
	_, base := openDirectory(t, plcserver.Options{})
	f := newFixture(t)
	g := f.signOp(f.genesis("doc.test"), f.rot)
	did := f.didOf(g)
	submit(t, base, did, g)
	resp, err := http.Get(base + "/" + did)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/did+ld+json") {
		t.Errorf("content type %q", ct)
	}
	var doc plcserver.Document
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	want := plcserver.Document{
		Context:            []string{"https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1", "https://w3id.org/security/suites/secp256k1-2019/v1"},
		ID:                 did,
		AlsoKnownAs:        []string{"at://doc.test"},
		VerificationMethod: []plcserver.VerificationMethod{{ID: did + "#atproto", Type: "Multikey", Controller: did, PublicKeyMultibase: strings.TrimPrefix(f.sign.DIDKey(), "did:key:")}},
		Service:            []plcserver.DocService{{ID: "#atproto_pds", Type: "AtprotoPersonalDataServer", ServiceEndpoint: "http://localhost:2583"}},
	}
	if string(mustJSON(t, doc)) != string(mustJSON(t, want)) {
		t.Errorf("document\n%s\nwant\n%s", mustJSON(t, doc), mustJSON(t, want))
	}
	// A signing key of another type (the current reference accepts any
	// did:key) is rendered as a Multikey without a suite context.
	ed := f.genesis("ed.test")
	edKey := "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
	ed.VerificationMethods["other"] = edKey
	f.signOp(ed, f.rot)
	edDID := f.didOf(ed)
	if a := submit(t, base, edDID, ed); a.status != 200 {
		t.Fatalf("ed25519 signing key: %d %s", a.status, a.body)
	}
	var edDoc plcserver.Document
	json.Unmarshal(do(t, "GET", base+"/"+edDID, "", nil).body, &edDoc)
	if len(edDoc.Context) != 3 || len(edDoc.VerificationMethod) != 2 || edDoc.VerificationMethod[1].ID != edDID+"#other" ||
		edDoc.VerificationMethod[1].PublicKeyMultibase != strings.TrimPrefix(edKey, "did:key:") {
		t.Errorf("document with an ed25519 key: %+v", edDoc)
	}
	if a := do(t, "GET", base+"/did:plc:"+strings.Repeat("z", 24), "", nil); a.status != 404 || a.message() != "DID not registered: did:plc:"+strings.Repeat("z", 24) {
		t.Errorf("unknown DID: %d %s", a.status, a.body)
	}
}

// TestExportAndPersistence: /export pages through every op in acceptance
// order, and the log survives closing and reopening the database.
func TestExportAndPersistence(t *testing.T) {
	clk := &clock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "plc.sqlite")
	d, err := plcserver.Open(context.Background(), path, plcserver.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	var cids []string
	for i := 0; i < 5; i++ {
		f := newFixture(t)
		g := f.signOp(f.genesis("exp.test"), f.rot)
		clk.Add(time.Second)
		if err := d.Submit(context.Background(), f.didOf(g), mustJSON(t, g)); err != nil {
			t.Fatalf("submit: %v", err)
		}
		cids = append(cids, opCID(t, g))
	}
	var refusal *plcserver.Error
	if err := d.Submit(context.Background(), "did:plc:"+strings.Repeat("a", 24), []byte(`{}`)); !errors.As(err, &refusal) || refusal.Status != 400 {
		t.Fatalf("Submit({}) = %v, want a 400 *Error", err)
	}
	d.Close()
	d, err = plcserver.Open(context.Background(), path, plcserver.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	srv := httptestServer(t, d)

	var got []string
	after := ""
	for page := 0; page < 5 && len(got) < 5; page++ {
		q := url.Values{"count": {"2"}}
		if after != "" {
			q.Set("after", after)
		}
		resp, err := http.Get(srv + "/export?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/jsonlines" {
			t.Errorf("content type %q", ct)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		n := 0
		for sc.Scan() {
			var e plc.LogEntry
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
			got = append(got, e.CID)
			after = e.CreatedAt
			n++
		}
		resp.Body.Close()
		if n > 2 {
			t.Fatalf("page of %d lines with count=2", n)
		}
	}
	if strings.Join(got, ",") != strings.Join(cids, ",") {
		t.Errorf("export %v, want %v", got, cids)
	}
	if a := do(t, "GET", srv+"/export?count=0", "", nil); a.status != 400 || a.message() != "Invalid count parameter" {
		t.Errorf("count=0: %d %s", a.status, a.body)
	}
	if a := do(t, "GET", srv+"/_health", "", nil); a.status != 200 || string(a.body) != `{"version":"0.0.0"}` {
		t.Errorf("health: %d %s", a.status, a.body)
	}
}

// TestConcurrentSubmit: of competing updates on the same prev, signed by the
// same key, exactly one is accepted.
func TestConcurrentSubmit(t *testing.T) {
	_, base := openDirectory(t, plcserver.Options{})
	f := newFixture(t)
	g := f.signOp(f.genesis("race.test"), f.rot)
	did := f.didOf(g)
	if a := submit(t, base, did, g); a.status != 200 {
		t.Fatalf("genesis: %d %s", a.status, a.body)
	}
	const n = 8
	bodies := make([][]byte, n)
	for i := range bodies {
		u, _ := g.Next(func(o *plc.Operation) { o.AlsoKnownAs = []string{"at://race" + strconv.Itoa(i) + ".test"} })
		bodies[i] = mustJSON(t, f.signOp(u, f.rot))
	}
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", base+"/"+did, strings.NewReader(string(bodies[i])))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	accepted := 0
	for _, st := range statuses {
		switch st {
		case 200:
			accepted++
		case 400:
		default:
			t.Errorf("status %d", st)
		}
	}
	var audit []plc.LogEntry
	json.Unmarshal(do(t, "GET", base+"/"+did+"/log/audit", "", nil).body, &audit)
	if accepted != 1 || len(audit) != 2 {
		t.Fatalf("accepted %d of %d, audit has %d entries (want 1 and 2)", accepted, n, len(audit))
	}
}
