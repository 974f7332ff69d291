package pds_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/auth"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"
	"github.com/miekg/dns"
	_ "modernc.org/sqlite"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/internal/testplc"
	"github.com/pdsgo/pds/internal/testsmtp"
)

// testDomain is the suffix of the custom-domain hosts tests serve from loopback (DNS and HTTPS).
const testDomain = ".example.com"

// idEnv is a PDS whose world of custom domains is simulated: a DNS server on loopback answers _atproto TXT
// queries (PDS_HANDLE_DNS_SERVER), an HTTP server answers https://<host>/.well-known/{atproto-did,did.json}
// for hosts under testDomain (the PDS's outbound client routes them there), and an SMTP server receives mail.
type idEnv struct {
	p    *testpds.PDS
	mail *testsmtp.Server
	plc  *plc.Client

	mu        sync.Mutex
	txt       map[string]string // "_atproto.<host>." -> TXT value
	wellKnown map[string]string // host -> DID
	didDocs   map[string][]byte // host -> did.json
	plcWrites atomic.Int64      // POSTs the PDS sent to the PLC directory
}

func startIDEnv(t *testing.T) *idEnv {
	t.Helper()
	e := &idEnv{txt: map[string]string{}, wellKnown: map[string]string{}, didDocs: map[string][]byte{}}

	// DNS.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dnsSrv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(e.serveDNS)}
	go dnsSrv.ActivateAndServe()
	t.Cleanup(func() { dnsSrv.Shutdown() })

	// HTTPS hosts (served over plain HTTP on loopback; the transport below rewrites the scheme).
	web := httptest.NewServer(http.HandlerFunc(e.serveWeb))
	t.Cleanup(web.Close)

	e.mail = testsmtp.Start(t, testsmtp.Options{})
	plcURL := testplc.Start(t)
	plcHost := strings.TrimPrefix(plcURL, "http://")
	webHost := strings.TrimPrefix(web.URL, "http://")
	client := &http.Client{Timeout: 10 * time.Second, Transport: roundTripper(func(req *http.Request) (*http.Response, error) {
		switch {
		case req.URL.Host == plcHost:
			if req.Method == http.MethodPost {
				e.plcWrites.Add(1)
			}
			return http.DefaultTransport.RoundTrip(req)
		case strings.HasSuffix(req.URL.Hostname(), testDomain) && req.URL.Scheme == "https":
			r := req.Clone(req.Context())
			r.URL.Scheme, r.URL.Host, r.Host = "http", webHost, req.URL.Host
			return http.DefaultTransport.RoundTrip(r)
		}
		return nil, fmt.Errorf("test transport: no route to %s", req.URL)
	})}
	e.p = testpds.Start(t, testpds.Options{
		PLCURL:     plcURL,
		HTTPClient: client,
		Env: map[string]string{
			"PDS_HANDLE_DNS_SERVER":  pc.LocalAddr().String(),
			"PDS_EMAIL_SMTP_URL":     e.mail.URL(),
			"PDS_EMAIL_FROM_ADDRESS": "pds@localhost.test",
		},
	})
	e.plc = &plc.Client{URL: plcURL}
	return e
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (e *idEnv) serveDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	e.mu.Lock()
	for _, q := range r.Question {
		if v, ok := e.txt[strings.ToLower(q.Name)]; ok && q.Qtype == dns.TypeTXT {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{v}})
		}
	}
	e.mu.Unlock()
	if len(m.Answer) == 0 {
		m.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(m)
}

func (e *idEnv) serveWeb(w http.ResponseWriter, r *http.Request) {
	host, _, _ := strings.Cut(r.Host, ":")
	e.mu.Lock()
	defer e.mu.Unlock()
	switch r.URL.Path {
	case "/.well-known/atproto-did":
		if did, ok := e.wellKnown[host]; ok {
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte(did))
			return
		}
	case "/.well-known/did.json":
		if doc, ok := e.didDocs[host]; ok {
			w.Header().Set("Content-Type", "application/json")
			w.Write(doc)
			return
		}
	}
	http.NotFound(w, r)
}

func (e *idEnv) setTXT(host, did string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.txt["_atproto."+host+"."] = "did=" + did
}

func (e *idEnv) setWellKnown(host, did string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.wellKnown[host] = did
}

func (e *idEnv) setDIDDoc(host string, doc any) {
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.didDocs[host] = b
}

// plcData is the PLC directory's current state of did.
func (e *idEnv) plcData(t *testing.T, did string) *plc.Data {
	t.Helper()
	d, err := e.plc.GetDocumentData(context.Background(), did)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// plcUpdate submits an operation of the test's own (signed with key, a rotation key of did).
func (e *idEnv) plcUpdate(t *testing.T, did string, key atcrypto.PrivateKey, mutate func(*plc.Operation)) {
	t.Helper()
	ctx := context.Background()
	last, err := e.plc.GetLastOp(ctx, did)
	if err != nil {
		t.Fatal(err)
	}
	op, err := last.Next(mutate)
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Sign(key); err != nil {
		t.Fatal(err)
	}
	if err := e.plc.Submit(ctx, did, op); err != nil {
		t.Fatalf("PLC refused the test's operation: %v", err)
	}
}

// ageEmailTokens moves every email token of did 20 minutes into the past (tokens live 15).
func (e *idEnv) ageEmailTokens(t *testing.T, did string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.p.Config.DataDirectory, "account.sqlite")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old := time.Now().Add(-20 * time.Minute).UTC().Format(time.RFC3339Nano)
	res, err := db.Exec("UPDATE email_token SET requested_at = ? WHERE did = ?", old, did)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		t.Fatalf("no email token of %s to age", did)
	}
}

func (e *idEnv) serverRotationKey(t *testing.T) string {
	pub, err := e.p.Config.RotationKey.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub.DIDKey()
}

func TestUpdateHandle(t *testing.T) {
	e := startIDEnv(t)
	p := e.p
	alice := p.CreateAccount("alice")
	bob := p.CreateAccount("bob")
	sub := testpds.SubscribeAfter(t, p, 8) // two accounts: #identity, #account, #commit, #sync each

	update := func(a *testpds.Account, handle string) *testpds.Response {
		return p.Procedure("com.atproto.identity.updateHandle", map[string]any{"handle": handle}, a.AccessJwt)
	}
	resolve := func(handle string) *testpds.Response {
		return p.Query("com.atproto.identity.resolveHandle", url.Values{"handle": {handle}}, "")
	}
	wellKnown := func(host string) *testpds.Response {
		req, _ := http.NewRequest(http.MethodGet, p.URL+"/.well-known/atproto-did", nil)
		req.Host = host
		return p.Do(req, "")
	}
	describe := func(a *testpds.Account) map[string]any {
		r := p.Query("com.atproto.repo.describeRepo", url.Values{"repo": {a.DID}}, "")
		testpds.WantStatus(t, r, 200, "")
		return r.JSON()
	}

	// On the service domain (mixed case is normalized).
	testpds.WantStatus(t, update(alice, "Alice2.test"), 200, "")
	if h := e.plcData(t, alice.DID).Handle(); h != "alice2.test" {
		t.Fatalf("PLC handle %q", h)
	}
	f := testpds.ExpectEvents(t, sub, alice.DID, "#identity")[0]
	if testpds.Str(f.Identity.Handle) != "alice2.test" {
		t.Fatalf("#identity handle %s", testpds.Str(f.Identity.Handle))
	}
	if r := resolve("alice2.test"); r.Status != 200 || r.JSON()["did"] != alice.DID {
		t.Fatalf("resolveHandle new: %s", r)
	}
	testpds.WantStatus(t, resolve("alice.test"), 400, "HandleNotFound")
	if r := wellKnown("alice2.test"); r.Status != 200 || string(r.Body) != alice.DID {
		t.Fatalf("well-known new: %s", r)
	}
	if r := wellKnown("alice.test"); r.Status != 404 {
		t.Fatalf("well-known old: %s", r)
	}
	if d := describe(alice); d["handle"] != "alice2.test" || d["handleIsCorrect"] != true {
		t.Fatalf("describeRepo: %v", d)
	}
	if s := p.Query("com.atproto.server.getSession", nil, alice.AccessJwt).JSON(); s["handle"] != "alice2.test" {
		t.Fatalf("getSession: %v", s)
	}
	// The old handle is free again.
	testpds.WantStatus(t, update(bob, "alice.test"), 200, "")
	testpds.ExpectEvents(t, sub, bob.DID, "#identity")

	// Refusals, none of which reach PLC or the firehose.
	writes := e.plcWrites.Load()
	testpds.WantStatus(t, update(bob, "alice2.test"), 400, "HandleNotAvailable")
	testpds.WantStatus(t, update(bob, "al.test"), 400, "InvalidHandle")
	testpds.WantStatus(t, update(bob, "admin.test"), 400, "HandleNotAvailable")
	testpds.WantStatus(t, update(bob, "a.b.test"), 400, "InvalidHandle")
	testpds.WantStatus(t, update(bob, "bob.invalid"), 400, "InvalidHandle")
	testpds.WantStatus(t, update(bob, "bob.local"), 400, "InvalidHandle")
	testpds.WantStatus(t, update(bob, "not a handle"), 400, "")
	testpds.WantStatus(t, p.Procedure("com.atproto.identity.updateHandle", map[string]any{"handle": "bob2.test"}, ""), 401, "AuthMissing")
	// A custom domain that points nowhere, and one that points at someone else.
	testpds.WantStatus(t, update(bob, "nobody"+testDomain), 400, "InvalidRequest")
	e.setWellKnown("alices"+testDomain, alice.DID)
	r := update(bob, "alices"+testDomain)
	testpds.WantStatus(t, r, 400, "InvalidRequest")
	if !strings.Contains(r.JSON()["message"].(string), "did not resolve to DID") {
		t.Fatalf("message: %s", r)
	}
	if n := e.plcWrites.Load(); n != writes {
		t.Fatalf("%d PLC writes for refused handle changes", n-writes)
	}

	// A custom domain through DNS TXT: refused until the record exists (no stale cached miss after it does).
	testpds.WantStatus(t, update(alice, "dns-alice"+testDomain), 400, "InvalidRequest")
	e.setTXT("dns-alice"+testDomain, alice.DID)
	testpds.WantStatus(t, update(alice, "dns-alice"+testDomain), 200, "")
	if h := e.plcData(t, alice.DID).Handle(); h != "dns-alice"+testDomain {
		t.Fatalf("PLC handle %q", h)
	}
	if f := testpds.ExpectEvents(t, sub, alice.DID, "#identity")[0]; testpds.Str(f.Identity.Handle) != "dns-alice"+testDomain {
		t.Fatalf("#identity handle %s", testpds.Str(f.Identity.Handle))
	}
	if d := describe(alice); d["handle"] != "dns-alice"+testDomain || d["handleIsCorrect"] != true {
		t.Fatalf("describeRepo: %v", d)
	}
	testpds.WantStatus(t, resolve("alice2.test"), 400, "HandleNotFound")

	// A custom domain through the HTTPS well-known file.
	e.setWellKnown("wk-bob"+testDomain, bob.DID)
	testpds.WantStatus(t, update(bob, "WK-Bob"+testDomain), 200, "")
	if f := testpds.ExpectEvents(t, sub, bob.DID, "#identity")[0]; testpds.Str(f.Identity.Handle) != "wk-bob"+testDomain {
		t.Fatalf("#identity handle %s", testpds.Str(f.Identity.Handle))
	}
	if r := resolve("wk-bob" + testDomain); r.Status != 200 || r.JSON()["did"] != bob.DID {
		t.Fatalf("resolveHandle custom: %s", r)
	}
	// resolveHandle of a domain hosted nowhere here goes to DNS / HTTPS.
	e.setTXT("elsewhere"+testDomain, "did:plc:ewvi7nxzyoun6zhxrhs64oiz")
	if r := resolve("elsewhere" + testDomain); r.Status != 200 || r.JSON()["did"] != "did:plc:ewvi7nxzyoun6zhxrhs64oiz" {
		t.Fatalf("resolveHandle remote: %s", r)
	}
	testpds.WantStatus(t, resolve("missing"+testDomain), 400, "InvalidRequest")

	// handleIsCorrect tells the truth: a DID document that no longer declares the handle makes it false.
	testpds.WantStatus(t, update(alice, "alice3.test"), 200, "")
	testpds.ExpectEvents(t, sub, alice.DID, "#identity")
	e.plcUpdate(t, alice.DID, e.p.Config.RotationKey, func(op *plc.Operation) { op.AlsoKnownAs = []string{"at://someone-else.test"} })
	if d := describe(alice); d["handleIsCorrect"] != false {
		t.Fatalf("describeRepo after the DID document changed: %v", d)
	}
	// Setting the handle again repairs the document.
	testpds.WantStatus(t, update(alice, "alice3.test"), 200, "")
	if d := describe(alice); d["handleIsCorrect"] != true || e.plcData(t, alice.DID).Handle() != "alice3.test" {
		t.Fatalf("describeRepo after repair: %v", d)
	}
	testpds.ExpectEvents(t, sub, alice.DID, "#identity")
}

func TestPLCOperations(t *testing.T) {
	e := startIDEnv(t)
	p := e.p
	alice := p.CreateAccount("alice")
	bob := p.CreateAccount("bob")
	ctx := context.Background()
	serverKey := e.serverRotationKey(t)
	before := e.plcData(t, alice.DID)

	// Recommended credentials match what the PLC directory has now.
	rc := p.Query("com.atproto.identity.getRecommendedDidCredentials", nil, alice.AccessJwt)
	testpds.WantStatus(t, rc, 200, "")
	var creds struct {
		AlsoKnownAs         []string               `json:"alsoKnownAs"`
		VerificationMethods map[string]string      `json:"verificationMethods"`
		RotationKeys        []string               `json:"rotationKeys"`
		Services            map[string]plc.Service `json:"services"`
	}
	json.Unmarshal(rc.Body, &creds)
	if fmt.Sprint(creds.RotationKeys) != fmt.Sprint([]string{serverKey}) || creds.VerificationMethods["atproto"] != before.SigningKey() ||
		fmt.Sprint(creds.AlsoKnownAs) != "[at://alice.test]" || creds.Services["atproto_pds"].Endpoint != p.URL ||
		creds.Services["atproto_pds"].Type != "AtprotoPersonalDataServer" {
		t.Fatalf("recommended credentials %s vs PLC %+v", rc.Body, before)
	}

	sign := func(a *testpds.Account, body map[string]any) *testpds.Response {
		return p.Procedure("com.atproto.identity.signPlcOperation", body, a.AccessJwt)
	}
	request := func(a *testpds.Account) string {
		t.Helper()
		testpds.WantStatus(t, p.Procedure("com.atproto.identity.requestPlcOperationSignature", nil, a.AccessJwt), 200, "")
		m := e.mail.Next(t)
		if len(m.To) != 1 || m.To[0] != a.Email || m.Subject != "PLC Update Operation Requested" {
			t.Fatalf("mail to %v: %q", m.To, m.Subject)
		}
		return m.Token(t)
	}
	userKey, err := atcrypto.GeneratePrivateKeyK256()
	if err != nil {
		t.Fatal(err)
	}
	userPub, _ := userKey.PublicKey()
	rotate := map[string]any{"rotationKeys": []string{userPub.DIDKey(), serverKey}}
	withToken := func(tok string) map[string]any {
		return map[string]any{"token": tok, "rotationKeys": rotate["rotationKeys"]}
	}

	// No token, a made-up token, someone else's token, an expired token.
	r := sign(alice, rotate)
	testpds.WantStatus(t, r, 400, "InvalidRequest")
	testpds.WantStatus(t, sign(alice, withToken("AAAAA-BBBBB")), 400, "InvalidToken")
	bobToken := request(bob)
	testpds.WantStatus(t, sign(alice, withToken(bobToken)), 400, "InvalidToken")
	expiring := request(alice)
	e.ageEmailTokens(t, alice.DID)
	testpds.WantStatus(t, sign(alice, withToken(expiring)), 400, "ExpiredToken")
	// A request that would build an invalid operation does not use the token up.
	token := request(alice)
	testpds.WantStatus(t, sign(alice, map[string]any{"token": token, "rotationKeys": []string{"did:key:nonsense"}}), 400, "InvalidRequest")

	// Sign: the server builds the next operation from the last one with the requested change.
	r = sign(alice, withToken(strings.ToLower(token)))
	testpds.WantStatus(t, r, 200, "")
	var signed struct {
		Operation json.RawMessage `json:"operation"`
	}
	json.Unmarshal(r.Body, &signed)
	parsed, err := plc.ParseOperation(signed.Operation)
	if err != nil {
		t.Fatalf("signed operation: %v: %s", err, signed.Operation)
	}
	op := parsed.(*plc.Operation)
	lastCID, err := e.plc.LastCID(ctx, alice.DID)
	if err != nil {
		t.Fatal(err)
	}
	if op.Prev == nil || *op.Prev != lastCID {
		t.Fatalf("prev %v, want %s", op.Prev, lastCID)
	}
	if err := op.VerifySignature([]string{serverKey}); err != nil {
		t.Fatalf("not signed by the server's rotation key: %v", err)
	}
	if fmt.Sprint(op.RotationKeys) != fmt.Sprint(rotate["rotationKeys"]) || op.SigningKey() != before.SigningKey() ||
		op.Handle() != "alice.test" || op.PDSEndpoint() != p.URL {
		t.Fatalf("signed operation %s", signed.Operation)
	}
	// Signing does not submit, and the token works once.
	if fmt.Sprint(e.plcData(t, alice.DID).RotationKeys) != fmt.Sprint(before.RotationKeys) {
		t.Fatal("signPlcOperation changed the PLC state")
	}
	testpds.WantStatus(t, sign(alice, withToken(token)), 400, "InvalidToken")

	// submitPlcOperation refuses operations that would cut this server out, before sending anything.
	sub := testpds.SubscribeAfter(t, p, 8)
	writes := e.plcWrites.Load()
	variant := func(mutate func(m map[string]any)) map[string]any {
		var m map[string]any
		json.Unmarshal(signed.Operation, &m)
		mutate(m)
		return map[string]any{"operation": m}
	}
	otherKey, _ := atcrypto.GeneratePrivateKeyK256()
	otherPub, _ := otherKey.PublicKey()
	for _, tc := range []struct {
		body map[string]any
		msg  string
	}{
		{variant(func(m map[string]any) { m["rotationKeys"] = []string{userPub.DIDKey()} }), "Rotation keys do not include server's rotation key"},
		{variant(func(m map[string]any) {
			m["services"] = map[string]any{"atproto_pds": map[string]any{"type": "Other", "endpoint": p.URL}}
		}), "Incorrect type on atproto_pds service"},
		{variant(func(m map[string]any) {
			m["services"] = map[string]any{"atproto_pds": map[string]any{"type": "AtprotoPersonalDataServer", "endpoint": "https://elsewhere.example.com"}}
		}), "Incorrect endpoint on atproto_pds service"},
		{variant(func(m map[string]any) { m["verificationMethods"] = map[string]any{"atproto": otherPub.DIDKey()} }), "Incorrect signing key"},
		{variant(func(m map[string]any) { m["alsoKnownAs"] = []string{"at://bob.test"} }), "Incorrect handle in alsoKnownAs"},
		{map[string]any{"operation": map[string]any{"type": "plc_tombstone", "prev": lastCID, "sig": "x"}}, "Invalid operation"},
	} {
		r := p.Procedure("com.atproto.identity.submitPlcOperation", tc.body, alice.AccessJwt)
		testpds.WantStatus(t, r, 400, "InvalidRequest")
		if !strings.Contains(r.JSON()["message"].(string), tc.msg) {
			t.Fatalf("want %q, got %s", tc.msg, r)
		}
	}
	if n := e.plcWrites.Load(); n != writes {
		t.Fatalf("refused operations reached PLC (%d writes)", n-writes)
	}
	// Bob cannot submit alice's operation as his own: it is checked against his account.
	r = p.Procedure("com.atproto.identity.submitPlcOperation", map[string]any{"operation": json.RawMessage(signed.Operation)}, bob.AccessJwt)
	testpds.WantStatus(t, r, 400, "InvalidRequest")

	// Submit: the PLC directory has the new rotation keys, and the firehose an #identity event.
	testpds.WantStatus(t, p.Procedure("com.atproto.identity.submitPlcOperation", map[string]any{"operation": json.RawMessage(signed.Operation)}, alice.AccessJwt), 200, "")
	after := e.plcData(t, alice.DID)
	if fmt.Sprint(after.RotationKeys) != fmt.Sprint(rotate["rotationKeys"]) || after.SigningKey() != before.SigningKey() || after.Handle() != "alice.test" {
		t.Fatalf("PLC after submit: %+v", after)
	}
	if f := testpds.ExpectEvents(t, sub, alice.DID, "#identity")[0]; testpds.Str(f.Identity.Handle) != "alice.test" {
		t.Fatalf("#identity handle %s", testpds.Str(f.Identity.Handle))
	}
	// The user's new key really controls the DID now (it outranks the server's), and the server still
	// manages the account: a handle change signs with the server key on top of the user's operation.
	e.plcUpdate(t, alice.DID, userKey, nil)
	testpds.WantStatus(t, p.Procedure("com.atproto.identity.updateHandle", map[string]any{"handle": "alice-rotated.test"}, alice.AccessJwt), 200, "")
	final := e.plcData(t, alice.DID)
	if final.Handle() != "alice-rotated.test" || fmt.Sprint(final.RotationKeys) != fmt.Sprint(rotate["rotationKeys"]) {
		t.Fatalf("PLC after handle change: %+v", final)
	}
	testpds.ExpectEvents(t, sub, alice.DID, "#identity")
}

func TestDeactivateAndActivate(t *testing.T) {
	e := startIDEnv(t)
	p := e.p
	alice := p.CreateAccount("alice")
	bob := p.CreateAccount("bob")
	created := p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": testpds.Post("hi")}, alice.AccessJwt)
	testpds.WantStatus(t, created, 200, "")
	rkey := strings.TrimPrefix(created.JSON()["uri"].(string), "at://"+alice.DID+"/app.bsky.feed.post/")
	sub := testpds.SubscribeAfter(t, p, 9)
	cc := testpds.NewCommitChecker(p)

	testpds.WantStatus(t, p.Procedure("com.atproto.server.deactivateAccount", map[string]any{}, alice.AccessJwt), 200, "")
	if f := testpds.ExpectEvents(t, sub, alice.DID, "#account")[0]; f.Account.Active || testpds.Str(f.Account.Status) != "deactivated" {
		t.Fatalf("#account %+v", f.Account)
	}

	// Login works and says inactive.
	sess := p.Procedure("com.atproto.server.createSession", map[string]any{"identifier": "alice.test", "password": alice.Password}, "")
	testpds.WantStatus(t, sess, 200, "")
	if j := sess.JSON(); j["active"] != false || j["status"] != "deactivated" {
		t.Fatalf("createSession: %s", sess)
	}
	if j := p.Query("com.atproto.server.getSession", nil, alice.AccessJwt).JSON(); j["active"] != false || j["status"] != "deactivated" {
		t.Fatalf("getSession: %v", j)
	}
	st := p.Query("com.atproto.server.checkAccountStatus", nil, alice.AccessJwt)
	if j := st.JSON(); j["activated"] != false || j["validDid"] != true {
		t.Fatalf("checkAccountStatus: %s", st)
	}
	// Writes fail.
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": testpds.Post("no")}, alice.AccessJwt), 400, "AccountDeactivated")
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.deleteRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "rkey": rkey}, alice.AccessJwt), 400, "AccountDeactivated")
	// Other people's reads fail; the owner's work.
	did := url.Values{"did": {alice.DID}}
	for _, token := range []string{"", bob.AccessJwt} {
		testpds.WantStatus(t, p.Query("com.atproto.sync.getRepo", did, token), 400, "RepoDeactivated")
		testpds.WantStatus(t, p.Query("com.atproto.sync.getLatestCommit", did, token), 400, "RepoDeactivated")
		testpds.WantStatus(t, p.Query("com.atproto.repo.getRecord", url.Values{"repo": {alice.DID}, "collection": {"app.bsky.feed.post"}, "rkey": {rkey}}, token), 400, "RepoDeactivated")
		testpds.WantStatus(t, p.Query("com.atproto.repo.describeRepo", url.Values{"repo": {alice.DID}}, token), 400, "RepoDeactivated")
	}
	testpds.WantStatus(t, p.Query("com.atproto.sync.getLatestCommit", did, alice.AccessJwt), 200, "")
	if j := p.Query("com.atproto.sync.getRepoStatus", did, "").JSON(); j["active"] != false || j["status"] != "deactivated" {
		t.Fatalf("getRepoStatus: %v", j)
	}
	testpds.WantStatus(t, p.Query("com.atproto.identity.resolveHandle", url.Values{"handle": {"alice.test"}}, ""), 400, "HandleNotFound")

	// Activate: #account active, #identity, #sync with the head commit only.
	testpds.WantStatus(t, p.Procedure("com.atproto.server.activateAccount", nil, alice.AccessJwt), 200, "")
	frames := testpds.ExpectEvents(t, sub, alice.DID, "#account", "#identity", "#sync")
	if a := frames[0].Account; !a.Active || a.Status != nil {
		t.Fatalf("#account %+v", a)
	}
	if testpds.Str(frames[1].Identity.Handle) != "alice.test" {
		t.Fatalf("#identity %+v", frames[1].Identity)
	}
	head := p.Query("com.atproto.sync.getLatestCommit", did, "").JSON()
	if frames[2].Sync.Rev != head["rev"] {
		t.Fatalf("#sync rev %s, head %v", frames[2].Sync.Rev, head)
	}
	if c, root := testpds.CARCommit(t, frames[2].Sync.Blocks); root.String() != head["cid"] || c.DID != alice.DID {
		t.Fatalf("#sync commit %s, head %v", root, head)
	}
	cc.Check(t, frames[2]) // signature, one block
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": testpds.Post("back")}, alice.AccessJwt), 200, "")
	testpds.WantStatus(t, p.Query("com.atproto.sync.getRepo", did, bob.AccessJwt), 200, "")
	if f := testpds.ExpectEvents(t, sub, alice.DID, "#commit")[0]; *f.Commit.Since != frames[2].Sync.Rev {
		t.Fatalf("first commit after activation: since %s, #sync rev %s", testpds.Str(f.Commit.Since), frames[2].Sync.Rev)
	}

	// Activation checks the DID document: moved elsewhere, it is refused (and checkAccountStatus says so).
	e.plcUpdate(t, alice.DID, p.Config.RotationKey, func(op *plc.Operation) {
		op.Services["atproto_pds"] = plc.Service{Type: "AtprotoPersonalDataServer", Endpoint: "https://elsewhere.example.com"}
	})
	testpds.WantStatus(t, p.Procedure("com.atproto.server.deactivateAccount", map[string]any{}, alice.AccessJwt), 200, "")
	testpds.ExpectEvents(t, sub, alice.DID, "#account")
	r := p.Procedure("com.atproto.server.activateAccount", nil, alice.AccessJwt)
	testpds.WantStatus(t, r, 400, "InvalidRequest")
	if !strings.Contains(r.JSON()["message"].(string), "service endpoint") {
		t.Fatalf("activate: %s", r)
	}
	if j := p.Query("com.atproto.server.checkAccountStatus", nil, alice.AccessJwt).JSON(); j["validDid"] != false || j["activated"] != false {
		t.Fatalf("checkAccountStatus: %v", j)
	}
	e.plcUpdate(t, alice.DID, p.Config.RotationKey, func(op *plc.Operation) {
		op.Services["atproto_pds"] = plc.Service{Type: "AtprotoPersonalDataServer", Endpoint: p.URL}
	})
	testpds.WantStatus(t, p.Procedure("com.atproto.server.activateAccount", nil, alice.AccessJwt), 200, "")
	testpds.ExpectEvents(t, sub, alice.DID, "#account", "#identity", "#sync")
	if j := p.Query("com.atproto.server.checkAccountStatus", nil, alice.AccessJwt).JSON(); j["validDid"] != true || j["activated"] != true {
		t.Fatalf("checkAccountStatus: %v", j)
	}
	// Activation needs full credentials.
	testpds.WantStatus(t, p.Procedure("com.atproto.server.activateAccount", nil, ""), 401, "AuthMissing")
	testpds.WantStatus(t, p.Procedure("com.atproto.server.deactivateAccount", map[string]any{"deleteAfter": "tomorrow"}, alice.AccessJwt), 400, "InvalidRequest")
}

// dataPaths lists every path under the data directory that names did.
func dataPaths(t *testing.T, p *testpds.PDS, did string) []string {
	t.Helper()
	var found []string
	filepath.WalkDir(p.Config.DataDirectory, func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(path, did) {
			found = append(found, path)
		}
		return nil
	})
	return found
}

func TestDeleteAccount(t *testing.T) {
	e := startIDEnv(t)
	p := e.p
	alice := p.CreateAccount("alice")
	bob := p.CreateAccount("bob")
	for i := range 3 {
		testpds.WantStatus(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": testpds.Post(fmt.Sprint("post ", i))}, alice.AccessJwt), 200, "")
	}
	img := testpds.UploadBlobOK(t, p, alice.AccessJwt, "image/png", testpds.PNG(1, 5000))
	testpds.WantStatus(t, testpds.CreateRecord(t, p, alice, "app.bsky.feed.post", testpds.ImagePost("with a picture", img)), 200, "")
	if st := p.Query("com.atproto.server.checkAccountStatus", nil, alice.AccessJwt).JSON(); st["expectedBlobs"] != 1.0 || st["importedBlobs"] != 1.0 || st["indexedRecords"] != 4.0 {
		t.Fatalf("checkAccountStatus: %v", st)
	}
	if paths := dataPaths(t, p, alice.DID); len(paths) < 2 || !strings.Contains(strings.Join(paths, " "), img.CID()) {
		t.Fatalf("the account's repository and blob are not in the data directory (the test would prove nothing): %v", paths)
	}
	requestDelete := func(a *testpds.Account) string {
		t.Helper()
		testpds.WantStatus(t, p.Procedure("com.atproto.server.requestAccountDelete", nil, a.AccessJwt), 200, "")
		m := e.mail.Next(t)
		if len(m.To) != 1 || m.To[0] != a.Email || m.Subject != "Account Deletion Requested" {
			t.Fatalf("mail to %v: %q", m.To, m.Subject)
		}
		return m.Token(t)
	}
	del := func(did, password, token string) *testpds.Response {
		return p.Procedure("com.atproto.server.deleteAccount", map[string]any{"did": did, "password": password, "token": token}, "")
	}

	bobToken := requestDelete(bob)
	token := requestDelete(alice)
	e.ageEmailTokens(t, alice.DID)
	testpds.WantStatus(t, del(alice.DID, alice.Password, token), 400, "ExpiredToken")
	token = requestDelete(alice)
	testpds.WantStatus(t, del(alice.DID, "wrong password", token), 401, "AuthenticationRequired")
	testpds.WantStatus(t, del(alice.DID, alice.Password, "AAAAA-BBBBB"), 400, "InvalidToken")
	testpds.WantStatus(t, del(alice.DID, alice.Password, bobToken), 400, "InvalidToken")
	testpds.WantStatus(t, del(alice.DID, bob.Password, bobToken), 401, "AuthenticationRequired")
	testpds.WantStatus(t, del("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", alice.Password, token), 400, "InvalidRequest")
	testpds.WantStatus(t, p.Query("com.atproto.sync.getLatestCommit", url.Values{"did": {alice.DID}}, ""), 200, "")

	sub := testpds.SubscribeAfter(t, p, 12) // two accounts (4 events each), 4 commits
	testpds.WantStatus(t, del(alice.DID, alice.Password, token), 200, "")
	f := testpds.ExpectEvents(t, sub, alice.DID, "#account")[0]
	if f.Account.Active || testpds.Str(f.Account.Status) != "deleted" {
		t.Fatalf("#account %+v", f.Account)
	}

	// Nothing left: no files, no account, no sessions, no handle, no events but the deletion.
	if paths := dataPaths(t, p, alice.DID); len(paths) != 0 {
		t.Fatalf("left on disk: %v", paths)
	}
	testpds.WantStatus(t, p.Procedure("com.atproto.server.createSession", map[string]any{"identifier": "alice.test", "password": alice.Password}, ""), 401, "AuthenticationRequired")
	testpds.WantStatus(t, p.Procedure("com.atproto.server.refreshSession", nil, alice.RefreshJwt), 400, "ExpiredToken")
	testpds.WantStatus(t, p.Query("com.atproto.sync.getRepoStatus", url.Values{"did": {alice.DID}}, ""), 400, "RepoNotFound")
	testpds.WantStatus(t, p.Query("com.atproto.sync.getRepo", url.Values{"did": {alice.DID}}, ""), 400, "RepoNotFound")
	testpds.WantStatus(t, p.Query("com.atproto.identity.resolveHandle", url.Values{"handle": {"alice.test"}}, ""), 400, "HandleNotFound")
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": testpds.Post("ghost")}, alice.AccessJwt), 400, "")
	if strings.Contains(string(p.Query("com.atproto.sync.listRepos", nil, "").Body), alice.DID) {
		t.Fatal("listRepos still lists the account")
	}
	replay := testpds.Subscribe(t, p, "0")
	var aliceEvents []string
	for {
		fr := replay.Next()
		if fr.DID() == alice.DID {
			aliceEvents = append(aliceEvents, fr.Type)
		}
		if fr.Seq == f.Seq {
			break
		}
	}
	if fmt.Sprint(aliceEvents) != "[#account]" {
		t.Fatalf("the log still holds the account's events: %v", aliceEvents)
	}
	// The handle is free, and bob is untouched.
	testpds.WantStatus(t, p.Procedure("com.atproto.identity.updateHandle", map[string]any{"handle": "alice.test"}, bob.AccessJwt), 200, "")
	testpds.WantStatus(t, del(bob.DID, bob.Password, bobToken), 200, "")

	// A deactivation's deleteAfter is enforced by the deletion job.
	carol := p.CreateAccount("carol")
	dave := p.CreateAccount("dave")
	past := time.Now().Add(-time.Second).UTC().Format(time.RFC3339)
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	testpds.WantStatus(t, p.Procedure("com.atproto.server.deactivateAccount", map[string]any{"deleteAfter": past}, carol.AccessJwt), 200, "")
	testpds.WantStatus(t, p.Procedure("com.atproto.server.deactivateAccount", map[string]any{"deleteAfter": future}, dave.AccessJwt), 200, "")
	n, err := p.Server.PurgeExpiredAccounts(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("PurgeExpiredAccounts: %d %v", n, err)
	}
	if paths := dataPaths(t, p, carol.DID); len(paths) != 0 {
		t.Fatalf("left on disk: %v", paths)
	}
	testpds.WantStatus(t, p.Query("com.atproto.sync.getRepoStatus", url.Values{"did": {carol.DID}}, ""), 400, "RepoNotFound")
	if j := p.Query("com.atproto.sync.getRepoStatus", url.Values{"did": {dave.DID}}, "").JSON(); j["status"] != "deactivated" {
		t.Fatalf("dave: %v", j)
	}
	// Reactivating clears deleteAfter.
	testpds.WantStatus(t, p.Procedure("com.atproto.server.activateAccount", nil, dave.AccessJwt), 200, "")
	expectEventsSkipping(t, sub, carol.DID, "deleted")
}

// expectEventsSkipping reads until the #account event of did with the given status.
func expectEventsSkipping(t *testing.T, sub *testpds.Subscriber, did, status string) {
	t.Helper()
	for {
		f := sub.Next()
		if f.Account != nil && f.Account.Did == did && testpds.Str(f.Account.Status) == status {
			return
		}
	}
}

func TestDIDWebAccount(t *testing.T) {
	e := startIDEnv(t)
	p := e.p
	host := "webby" + testDomain
	did := "did:web:" + host
	tempKey, _ := atcrypto.GeneratePrivateKeyK256()
	tempPub, _ := tempKey.PublicKey()
	doc := func(signing atcrypto.PublicKey, handle, endpoint string) map[string]any {
		return map[string]any{
			"@context":    []string{"https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"},
			"id":          did,
			"alsoKnownAs": []string{"at://" + handle},
			"verificationMethod": []any{map[string]any{
				"id": did + "#atproto", "type": "Multikey", "controller": did, "publicKeyMultibase": signing.Multibase(),
			}},
			"service": []any{map[string]any{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": endpoint}},
		}
	}
	e.setDIDDoc(host, doc(tempPub, host, p.URL))
	e.setWellKnown(host, did)
	lxm := syntax.NSID("com.atproto.server.createAccount")
	serviceJWT := func(iss string, key atcrypto.PrivateKey, method syntax.NSID) string {
		tok, err := auth.SignServiceAuth(syntax.DID(iss), p.Config.ServiceDID, time.Minute, &method, key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	body := map[string]any{"did": did, "handle": host, "email": "webby@example.com", "password": "web-password"}
	create := func(token string) *testpds.Response {
		return p.Procedure("com.atproto.server.createAccount", body, token)
	}
	otherKey, _ := atcrypto.GeneratePrivateKeyK256()
	writes := e.plcWrites.Load()
	sub := testpds.Subscribe(t, p, "")

	testpds.WantStatus(t, create(""), 401, "AuthenticationRequired")
	testpds.WantStatus(t, create(serviceJWT(did, otherKey, lxm)), 401, "AuthenticationRequired")
	testpds.WantStatus(t, create(serviceJWT(did, tempKey, "com.atproto.server.getSession")), 401, "AuthenticationRequired")
	testpds.WantStatus(t, create(serviceJWT("did:web:other"+testDomain, tempKey, lxm)), 401, "AuthenticationRequired")
	r := create(serviceJWT(did, tempKey, lxm))
	testpds.WantStatus(t, r, 200, "")
	out := r.JSON()
	if out["did"] != did || out["handle"] != host {
		t.Fatalf("createAccount: %s", r)
	}
	access := out["accessJwt"].(string)
	testpds.WantStatus(t, create(serviceJWT(did, tempKey, lxm)), 400, "InvalidRequest") // exists

	// The account starts deactivated and silent.
	if j := p.Query("com.atproto.server.getSession", nil, access).JSON(); j["active"] != false || j["status"] != "deactivated" {
		t.Fatalf("getSession: %v", j)
	}
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": did, "collection": "app.bsky.feed.post", "record": testpds.Post("early")}, access), 400, "AccountDeactivated")
	// PLC endpoints are not for did:web.
	testpds.WantStatus(t, p.Procedure("com.atproto.identity.requestPlcOperationSignature", nil, access), 400, "InvalidRequest")
	testpds.WantStatus(t, p.Procedure("com.atproto.identity.signPlcOperation", map[string]any{"token": "AAAAA-BBBBB"}, access), 400, "InvalidRequest")

	// Activation needs the document to carry the server's signing key for the account.
	rc := p.Query("com.atproto.identity.getRecommendedDidCredentials", nil, access)
	testpds.WantStatus(t, rc, 200, "")
	r = p.Procedure("com.atproto.server.activateAccount", nil, access)
	testpds.WantStatus(t, r, 400, "InvalidRequest")
	if !strings.Contains(r.JSON()["message"].(string), "signing key") {
		t.Fatalf("activate with the old document: %s", r)
	}
	signingDIDKey := rc.JSON()["verificationMethods"].(map[string]any)["atproto"].(string)
	signingPub, err := atcrypto.ParsePublicDIDKey(signingDIDKey)
	if err != nil {
		t.Fatal(err)
	}
	e.setDIDDoc(host, doc(signingPub, host, p.URL))
	testpds.WantStatus(t, p.Procedure("com.atproto.server.activateAccount", nil, access), 200, "")
	frames := testpds.ExpectEvents(t, sub, did, "#account", "#identity", "#sync") // nothing before: creation was silent
	if !frames[0].Account.Active || testpds.Str(frames[1].Identity.Handle) != host {
		t.Fatalf("activation events: %+v %+v", frames[0].Account, frames[1].Identity)
	}
	c, root := testpds.CARCommit(t, frames[2].Sync.Blocks)
	if err := c.VerifySignature(signingPub); err != nil || c.DID != did || testpds.CARBlockCount(t, frames[2].Sync.Blocks) != 1 {
		t.Fatalf("#sync commit %s: %v", root, err)
	}

	// Now an ordinary account.
	created := p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": did, "collection": "app.bsky.feed.post", "record": testpds.Post("hello from did:web")}, access)
	testpds.WantStatus(t, created, 200, "")
	cm := testpds.ExpectEvents(t, sub, did, "#commit")[0].Commit
	cc, _ := testpds.CARCommit(t, cm.Blocks)
	if err := cc.VerifySignature(signingPub); err != nil || cid.Cid(cm.Commit).String() != created.JSON()["commit"].(map[string]any)["cid"] {
		t.Fatalf("commit: %v", err)
	}
	d := p.Query("com.atproto.repo.describeRepo", url.Values{"repo": {did}}, "")
	if j := d.JSON(); j["handleIsCorrect"] != true || j["handle"] != host {
		t.Fatalf("describeRepo: %s", d)
	}
	if j := p.Query("com.atproto.server.checkAccountStatus", nil, access).JSON(); j["validDid"] != true || j["activated"] != true {
		t.Fatalf("checkAccountStatus: %v", j)
	}

	// A handle change: the document must declare the new handle first.
	e.setTXT("alt-webby"+testDomain, did)
	r = p.Procedure("com.atproto.identity.updateHandle", map[string]any{"handle": "alt-webby" + testDomain}, access)
	testpds.WantStatus(t, r, 400, "InvalidRequest")
	if !strings.Contains(r.JSON()["message"].(string), "DID is not properly configured for handle") {
		t.Fatalf("updateHandle: %s", r)
	}
	e.setDIDDoc(host, doc(signingPub, "alt-webby"+testDomain, p.URL))
	testpds.WantStatus(t, p.Procedure("com.atproto.identity.updateHandle", map[string]any{"handle": "alt-webby" + testDomain}, access), 200, "")
	if f := testpds.ExpectEvents(t, sub, did, "#identity")[0]; testpds.Str(f.Identity.Handle) != "alt-webby"+testDomain {
		t.Fatalf("#identity %+v", f.Identity)
	}

	if n := e.plcWrites.Load(); n != writes {
		t.Fatalf("the did:web account caused %d PLC writes", n-writes)
	}
}
