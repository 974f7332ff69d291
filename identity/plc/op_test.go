package plc

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
)

// Test vector: the first two entries of the audit log of
// did:plc:huyin2bxfj3bpg3gjq64nazd, as published in go-didplc's testdata
// (github.com/did-method-plc/go-didplc,
// testdata/log_nullification_at_exactly_72h.json). Both are K256-signed
// operations produced by another implementation; the DID and CIDs are the
// ones the directory recorded.
const vectorDID = "did:plc:huyin2bxfj3bpg3gjq64nazd"

var vectorOps = []struct {
	json string
	cid  string
}{
	{
		json: `{"sig":"SMt9lbnrIZphaVysWweU24bobCCZQmROnpSE4_9ZcUZda05TW9kR3povEIWL76_5l28LPphh9zOBnzuT6CsfJA","prev":null,"type":"plc_operation","services":{},"alsoKnownAs":["at://op0"],"rotationKeys":["did:key:zQ3shbhi3Ecu99Fo6apTVVAzV15RExDaDgoY3mTuQXQsCPGky","did:key:zQ3shdDRwdy9yjepHMnhAmHXZ1sNHikyRUNbJBFmJdEHBSkm1"],"verificationMethods":{}}`,
		cid:  "bafyreib5gcdoqnzkoylzwzsmhxdigizzl7nlwoe2fujd6aqkgn4yn5juee",
	},
	{
		json: `{"sig":"5C6Wb29_El2d96XLoaJyBYczpSi4Y0iFiKx5vG6czV5eltBwPeQ2TT8B_EieXy_G3O_aRZrobUBKijQeQfop3g","prev":"bafyreib5gcdoqnzkoylzwzsmhxdigizzl7nlwoe2fujd6aqkgn4yn5juee","type":"plc_operation","services":{},"alsoKnownAs":["at://op1"],"rotationKeys":["did:key:zQ3shhZw6NmJJhdWcWqxGfaLKBV7LbW5RVVxbMuQQt5EZExEv","did:key:zQ3shQPH612ZLpKXu6wJ8Nq3xJcZ1KBngAYzV1ifvGFjyfGGM"],"verificationMethods":{}}`,
		cid:  "bafyreidygw4qxncobfaz54dujsdamppw5eyzfsjscvzzh62s4lgfdtwkhm",
	},
}

func parseOp(t *testing.T, s string) *Operation {
	t.Helper()
	v, err := ParseOperation([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	op, ok := v.(*Operation)
	if !ok {
		t.Fatalf("got %T, want *Operation", v)
	}
	return op
}

func TestVectorGoDIDPLC(t *testing.T) {
	genesis := parseOp(t, vectorOps[0].json)
	did, err := genesis.DID()
	if err != nil {
		t.Fatal(err)
	}
	if did != vectorDID {
		t.Errorf("DID = %s, want %s", did, vectorDID)
	}
	for i, v := range vectorOps {
		op := parseOp(t, v.json)
		c, err := op.CID()
		if err != nil {
			t.Fatal(err)
		}
		if c.String() != v.cid {
			t.Errorf("op %d: CID = %s, want %s", i, c, v.cid)
		}
	}
	// Genesis is signed by one of its own rotation keys.
	if err := genesis.VerifySignature(genesis.RotationKeys); err != nil {
		t.Errorf("genesis signature: %v", err)
	}
	// The update is signed by a rotation key of the genesis state...
	upd := parseOp(t, vectorOps[1].json)
	if err := upd.VerifySignature(genesis.RotationKeys); err != nil {
		t.Errorf("update signature: %v", err)
	}
	// ...and not by its own new keys.
	if err := upd.VerifySignature(upd.RotationKeys); !errors.Is(err, ErrInvalidSignature) {
		t.Errorf("update verified by its own keys: %v", err)
	}
	if _, err := upd.DID(); !errors.Is(err, ErrNotGenesis) {
		t.Errorf("DID of an update: %v", err)
	}
	// Tampering breaks the signature.
	genesis.AlsoKnownAs = []string{"at://other"}
	if err := genesis.VerifySignature(genesis.RotationKeys); !errors.Is(err, ErrInvalidSignature) {
		t.Errorf("tampered genesis verified: %v", err)
	}
}

func newKey(t *testing.T) (*atcrypto.PrivateKeyK256, string) {
	t.Helper()
	k, err := atcrypto.GeneratePrivateKeyK256()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := k.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return k, pub.DIDKey()
}

func TestSignVerifyRoundTrip(t *testing.T) {
	rot, rotDID := newKey(t)
	sign, _ := newKey(t)
	signPub, _ := sign.PublicKey()
	p256, err := atcrypto.GeneratePrivateKeyP256()
	if err != nil {
		t.Fatal(err)
	}
	p256Pub, _ := p256.PublicKey()

	op := NewGenesis(signPub, []string{p256Pub.DIDKey(), rotDID}, "alice.test", "http://localhost:2583")
	if err := op.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := op.CID(); !errors.Is(err, ErrNotSigned) {
		t.Fatalf("CID of unsigned op: %v", err)
	}
	if err := op.Sign(rot); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(op.Sig, "=+/") {
		t.Fatalf("sig %q is not unpadded base64url", op.Sig)
	}
	idx, err := op.SignerIndex(op.RotationKeys)
	if err != nil || idx != 1 {
		t.Fatalf("SignerIndex = %d, %v; want 1", idx, err)
	}
	// P256 signer too.
	op2 := NewGenesis(signPub, []string{p256Pub.DIDKey()}, "alice.test", "http://localhost:2583")
	if err := op2.Sign(p256); err != nil {
		t.Fatal(err)
	}
	if err := op2.VerifySignature(op2.RotationKeys); err != nil {
		t.Fatal(err)
	}

	// JSON: exact wire shape, round trip keeps DID and CID.
	b, err := json.Marshal(op)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"type", "rotationKeys", "verificationMethods", "alsoKnownAs", "services", "prev", "sig"}
	if len(m) != len(want) {
		t.Fatalf("JSON keys: %s", b)
	}
	for _, k := range want {
		if _, ok := m[k]; !ok {
			t.Fatalf("JSON lacks %q: %s", k, b)
		}
	}
	if string(m["prev"]) != "null" {
		t.Fatalf("prev = %s, want null", m["prev"])
	}
	if string(m["services"]) != `{"atproto_pds":{"type":"AtprotoPersonalDataServer","endpoint":"http://localhost:2583"}}` {
		t.Fatalf("services = %s", m["services"])
	}
	back := parseOp(t, string(b))
	d1, _ := op.DID()
	d2, err := back.DID()
	if err != nil || d1 != d2 {
		t.Fatalf("DID after JSON round trip: %s vs %s (%v)", d1, d2, err)
	}
	if !ValidDID(d1) {
		t.Fatalf("invalid DID %s", d1)
	}

	// Update chain.
	next, err := op.Next(func(o *Operation) { o.AlsoKnownAs = []string{"at://bob.test"} })
	if err != nil {
		t.Fatal(err)
	}
	c, _ := op.CID()
	if next.Prev == nil || *next.Prev != c.String() || next.Handle() != "bob.test" || op.Handle() != "alice.test" {
		t.Fatalf("Next: prev %v handle %q (orig %q)", next.Prev, next.Handle(), op.Handle())
	}
	if err := next.Sign(rot); err != nil {
		t.Fatal(err)
	}
	if err := next.VerifySignature(op.RotationKeys); err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(next)
	if !strings.Contains(string(b), `"prev":"`+c.String()+`"`) {
		t.Fatalf("update JSON: %s", b)
	}

	// Tombstone.
	ts := NewTombstone(c.String())
	if err := ts.Sign(rot); err != nil {
		t.Fatal(err)
	}
	if err := ts.VerifySignature(op.RotationKeys); err != nil {
		t.Fatal(err)
	}
	if err := ts.VerifySignature([]string{p256Pub.DIDKey()}); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("tombstone verified by the wrong key: %v", err)
	}
	b, _ = json.Marshal(ts)
	v, err := ParseOperation(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := v.(*Tombstone); !ok {
		t.Fatalf("ParseOperation(tombstone) = %T", v)
	}
	if _, err := ts.CID(); err != nil {
		t.Fatal(err)
	}
}

func TestSigEncodingStrict(t *testing.T) {
	op := parseOp(t, vectorOps[0].json)
	good := op.Sig
	for name, sig := range map[string]string{
		"padding":  good + "==",
		"newline":  good[:20] + "\n" + good[20:],
		"std b64":  strings.NewReplacer("-", "+", "_", "/").Replace(good) + "+",
		"short":    good[:40],
		"trailing": good[:len(good)-1] + "B", // non-zero trailing bits
		"empty":    "",
	} {
		op.Sig = sig
		if err := op.VerifySignature(op.RotationKeys); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	op.Sig = good
	if err := op.VerifySignature(op.RotationKeys); err != nil {
		t.Fatal(err)
	}
}

func TestParseRejects(t *testing.T) {
	for name, s := range map[string]string{
		"unknown field": `{"type":"plc_operation","rotationKeys":[],"verificationMethods":{},"alsoKnownAs":[],"services":{},"prev":null,"sig":"x","extra":1}`,
		"missing prev":  `{"type":"plc_operation","rotationKeys":[],"verificationMethods":{},"alsoKnownAs":[],"services":{},"sig":"x"}`,
		"legacy":        `{"type":"create","signingKey":"did:key:z","recoveryKey":"did:key:z","handle":"a","service":"b","prev":null,"sig":"x"}`,
		"unknown type":  `{"type":"nope"}`,
		"tomb no prev":  `{"type":"plc_tombstone","sig":"x"}`,
	} {
		if _, err := ParseOperation([]byte(s)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestValidateAndCheckAtproto(t *testing.T) {
	_, rotDID := newKey(t)
	sign, _ := newKey(t)
	signPub, _ := sign.PublicKey()
	op := NewGenesis(signPub, []string{rotDID}, "alice.test", "http://localhost:2583")
	exp := AtprotoExpect{Handle: "Alice.Test", SigningKey: signPub.DIDKey(), PDSEndpoint: "http://localhost:2583/", RotationKey: rotDID}
	if err := op.CheckAtproto(exp); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Operation){
		"handle": func(o *Operation) { o.AlsoKnownAs = []string{"at://bob.test"} },
		"key":    func(o *Operation) { o.VerificationMethods = map[string]string{"atproto": rotDID} },
		"endpoint": func(o *Operation) {
			o.Services["atproto_pds"] = Service{Type: ServiceTypeAtprotoPDS, Endpoint: "https://evil.example"}
		},
		"svc type": func(o *Operation) { o.Services["atproto_pds"] = Service{Type: "X", Endpoint: "http://localhost:2583"} },
		"no svc":   func(o *Operation) { o.Services = nil },
		"rotation": func(o *Operation) { _, k := newKey(t); o.RotationKeys = []string{k} },
	} {
		o := NewGenesis(signPub, []string{rotDID}, "alice.test", "http://localhost:2583")
		mutate(o)
		if err := o.CheckAtproto(exp); !errors.Is(err, ErrAtprotoMismatch) {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := map[string]func(*Operation){
		"no rotation keys": func(o *Operation) { o.RotationKeys = nil },
		"dup rotation key": func(o *Operation) { o.RotationKeys = []string{rotDID, rotDID} },
		"bad rotation key": func(o *Operation) { o.RotationKeys = []string{"did:key:zzz"} },
		"6 rotation keys": func(o *Operation) {
			o.RotationKeys = nil
			for i := 0; i < 6; i++ {
				_, k := newKey(t)
				o.RotationKeys = append(o.RotationKeys, k)
			}
		},
		"bad prev": func(o *Operation) { p := "nope"; o.Prev = &p },
		"bad type": func(o *Operation) { o.Type = "create" },
		"bad vm":   func(o *Operation) { o.VerificationMethods["atproto"] = "zQ3" },
		"bad svc":  func(o *Operation) { o.Services["x"] = Service{} },
	}
	for name, mutate := range bad {
		o := NewGenesis(signPub, []string{rotDID}, "alice.test", "http://localhost:2583")
		mutate(o)
		if err := o.Validate(); err == nil {
			t.Errorf("Validate %s: accepted", name)
		}
	}
}
