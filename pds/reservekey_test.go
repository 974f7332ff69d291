package pds_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/bluesky-social/indigo/atproto/atcrypto"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/internal/testpds"
)

// TestReserveSigningKeyWithPLCOp: the reference's reserveSigningKey + createAccount{did, plcOp} flow against the
// real PLC directory: a user who holds a rotation key of an existing did:plc reserves a key here for the DID,
// signs an operation pointing the DID at this server with that key, and creates the account with it. Every bad
// operation is refused before anything changes (no account, the DID untouched); the good one moves the DID and
// the account signs with the reserved key.
func TestReserveSigningKeyWithPLCOp(t *testing.T) {
	ctx := context.Background()
	p := testpds.Start(t, testpds.Options{})
	dir := &plc.Client{URL: p.PLCURL}
	userRot := newK256(t)
	serverRot := mustPub(t, p.Config.RotationKey).DIDKey()

	// An existing DID, hosted elsewhere, controlled by the user's rotation key.
	oldSigning := mustPub(t, newK256(t))
	gen := plc.NewGenesis(oldSigning, []string{mustPub(t, userRot).DIDKey()}, "mover.old.example", "https://old.example")
	if err := gen.Sign(userRot); err != nil {
		t.Fatal(err)
	}
	didStr, err := gen.DID()
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.Submit(ctx, didStr, gen); err != nil {
		t.Fatal(err)
	}

	reserve := func(body map[string]any) string {
		t.Helper()
		resp := p.Procedure("com.atproto.server.reserveSigningKey", body, "")
		if resp.Status != http.StatusOK {
			t.Fatalf("reserveSigningKey: %s", resp)
		}
		k, _ := resp.JSON()["signingKey"].(string)
		if _, err := atcrypto.ParsePublicDIDKey(k); err != nil {
			t.Fatalf("signingKey %q is not a did:key: %v", k, err)
		}
		return k
	}
	reserved := reserve(map[string]any{"did": didStr})
	if again := reserve(map[string]any{"did": didStr}); again != reserved {
		t.Fatalf("a second reservation for the DID gave %s, want %s", again, reserved)
	}
	unbound := reserve(map[string]any{})
	if unbound == reserved {
		t.Fatal("an unbound reservation got the DID's key")
	}
	if r := p.Procedure("com.atproto.server.reserveSigningKey", map[string]any{"did": "not a did"}, ""); r.Status != http.StatusBadRequest {
		t.Fatalf("reserveSigningKey with a bad DID: %s", r)
	}

	// The operation the user signs: this server, the reserved key, the new handle, both rotation keys.
	update := func(signer atcrypto.PrivateKey, mutate func(*plc.Operation)) json.RawMessage {
		t.Helper()
		last, err := dir.GetLastOp(ctx, didStr)
		if err != nil {
			t.Fatal(err)
		}
		op, err := last.Next(func(op *plc.Operation) {
			op.RotationKeys = []string{mustPub(t, userRot).DIDKey(), serverRot}
			op.VerificationMethods = map[string]string{plc.VerificationMethodAtproto: reserved}
			op.AlsoKnownAs = []string{"at://mover.test"}
			op.Services = map[string]plc.Service{plc.ServiceAtprotoPDS: {Type: plc.ServiceTypeAtprotoPDS, Endpoint: p.URL}}
			if mutate != nil {
				mutate(op)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := op.Sign(signer); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(op)
		return b
	}
	create := func(did string, op json.RawMessage) *testpds.Response {
		t.Helper()
		return p.Procedure("com.atproto.server.createAccount", map[string]any{
			"did": did, "plcOp": op, "handle": "mover.test", "email": "mover@example.com", "password": "password-mover",
		}, "")
	}
	unchanged := func(what string) {
		t.Helper()
		data, err := dir.GetDocumentData(ctx, didStr)
		if err != nil {
			t.Fatal(err)
		}
		if data.PDSEndpoint() != "https://old.example" || data.SigningKey() != oldSigning.DIDKey() {
			t.Fatalf("%s: the DID changed: %+v", what, data)
		}
		if r := p.Procedure("com.atproto.server.createSession", map[string]any{"identifier": "mover.test", "password": "password-mover"}, ""); r.Status == http.StatusOK {
			t.Fatalf("%s: an account was created", what)
		}
	}

	other := newK256(t)
	otherKey := mustPub(t, other).DIDKey()
	for _, c := range []struct {
		name, wantErr string
		op            json.RawMessage
	}{
		{"another server", "IncompatibleDidDoc", update(userRot, func(op *plc.Operation) {
			op.Services[plc.ServiceAtprotoPDS] = plc.Service{Type: plc.ServiceTypeAtprotoPDS, Endpoint: "https://elsewhere.example"}
		})},
		{"without the server's rotation key", "IncompatibleDidDoc", update(userRot, func(op *plc.Operation) {
			op.RotationKeys = op.RotationKeys[:1]
		})},
		{"another handle", "IncompatibleDidDoc", update(userRot, func(op *plc.Operation) { op.AlsoKnownAs = []string{"at://someone.test"} })},
		{"signed by a key that is not the DID's", "IncompatibleDidDoc", update(other, nil)},
		{"a key the server did not reserve", "IncompatibleDidDoc", update(userRot, func(op *plc.Operation) {
			op.VerificationMethods[plc.VerificationMethodAtproto] = otherKey
		})},
		{"an unbound key reserved for no DID, not the DID's", "IncompatibleDidDoc", update(userRot, func(op *plc.Operation) {
			op.VerificationMethods[plc.VerificationMethodAtproto] = unbound // found, but the DID's own reservation wins
		})},
		{"not an operation", "IncompatibleDidDoc", json.RawMessage(`{"type":"plc_operation"}`)},
	} {
		r := create(didStr, c.op)
		if r.Status != http.StatusBadRequest || r.ErrorName() != c.wantErr {
			t.Errorf("%s: %s, want 400 %s", c.name, r, c.wantErr)
		}
		unchanged(c.name)
	}
	if r := p.Procedure("com.atproto.server.createAccount", map[string]any{
		"plcOp": update(userRot, nil), "handle": "mover.test", "email": "mover@example.com", "password": "password-mover",
	}, ""); r.Status != http.StatusBadRequest {
		t.Errorf("plcOp without did: %s", r)
	}
	unchanged("plcOp without did")

	// The good operation: the account is created with the reserved key and the DID now points here.
	good := update(userRot, nil)
	r := create(didStr, good)
	if r.Status != http.StatusOK {
		t.Fatalf("createAccount with plcOp: %s", r)
	}
	out := r.JSON()
	if out["did"] != didStr || out["handle"] != "mover.test" {
		t.Fatalf("createAccount answered %s", r)
	}
	token, _ := out["accessJwt"].(string)
	data, err := dir.GetDocumentData(ctx, didStr)
	if err != nil {
		t.Fatal(err)
	}
	if data.PDSEndpoint() != p.URL || data.SigningKey() != reserved || data.Handle() != "mover.test" {
		t.Fatalf("the PLC directory has %+v", data)
	}
	// An existing DID starts deactivated (its repository is imported next); activation checks the document
	// against the account's key: the reserved one.
	if r := p.Query("com.atproto.server.checkAccountStatus", nil, token); r.JSON()["activated"] != false {
		t.Fatalf("checkAccountStatus: %s", r)
	}
	creds := p.Query("com.atproto.identity.getRecommendedDidCredentials", nil, token)
	if vm, _ := creds.JSON()["verificationMethods"].(map[string]any); vm["atproto"] != reserved {
		t.Fatalf("the account's signing key is not the reserved one: %s", creds)
	}
	if r := p.Procedure("com.atproto.server.activateAccount", nil, token); r.Status != http.StatusOK {
		t.Fatalf("activateAccount: %s", r)
	}
	if r := p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": didStr, "collection": "app.bsky.feed.post",
		"record": map[string]any{"$type": "app.bsky.feed.post", "text": "moved", "createdAt": "2026-12-07T20:00:00Z"}}, token); r.Status != http.StatusOK {
		t.Fatalf("createRecord after activation: %s", r)
	}
	// The reservation is used up: the same operation cannot create a second account, and a new reservation
	// for the DID is a new key.
	if r := create(didStr, good); r.Status != http.StatusBadRequest {
		t.Fatalf("the operation replayed: %s", r)
	}
	if k := reserve(map[string]any{"did": didStr}); k == reserved {
		t.Fatal("the used reservation was handed out again")
	}
}

// TestReserveSigningKeyGenesis: an unbound reservation, and a genesis operation the client signed with its own
// rotation key: the new DID goes to the PLC directory and the account is active at once.
func TestReserveSigningKeyGenesis(t *testing.T) {
	ctx := context.Background()
	p := testpds.Start(t, testpds.Options{})
	resp := p.Procedure("com.atproto.server.reserveSigningKey", map[string]any{}, "")
	if resp.Status != http.StatusOK {
		t.Fatalf("reserveSigningKey: %s", resp)
	}
	key, _ := resp.JSON()["signingKey"].(string)
	pub, err := atcrypto.ParsePublicDIDKey(key)
	if err != nil {
		t.Fatal(err)
	}
	userRot := newK256(t)
	op := plc.NewGenesis(pub, []string{mustPub(t, userRot).DIDKey(), mustPub(t, p.Config.RotationKey).DIDKey()}, "fresh.test", p.URL)
	if err := op.Sign(userRot); err != nil {
		t.Fatal(err)
	}
	did, err := op.DID()
	if err != nil {
		t.Fatal(err)
	}
	// A key this server never reserved, with no reservation for the DID either.
	stray := plc.NewGenesis(mustPub(t, newK256(t)), []string{mustPub(t, userRot).DIDKey(), mustPub(t, p.Config.RotationKey).DIDKey()}, "fresh.test", p.URL)
	if err := stray.Sign(userRot); err != nil {
		t.Fatal(err)
	}
	strayDID, _ := stray.DID()
	if r := p.Procedure("com.atproto.server.createAccount", map[string]any{"did": strayDID, "plcOp": stray,
		"handle": "fresh.test", "email": "fresh@example.com", "password": "password-fresh"}, ""); r.Status != http.StatusBadRequest || r.ErrorName() != "InvalidRequest" {
		t.Fatalf("an unreserved key: %s", r)
	}
	if _, err := (&plc.Client{URL: p.PLCURL}).GetDocumentData(ctx, strayDID); err == nil {
		t.Fatal("a refused genesis operation reached the PLC directory")
	}
	// A genesis operation under another DID is refused.
	if r := p.Procedure("com.atproto.server.createAccount", map[string]any{"did": "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", "plcOp": op,
		"handle": "fresh.test", "email": "fresh@example.com", "password": "password-fresh"}, ""); r.Status != http.StatusBadRequest || r.ErrorName() != "IncompatibleDidDoc" {
		t.Fatalf("genesis under another DID: %s", r)
	}
	r := p.Procedure("com.atproto.server.createAccount", map[string]any{"did": did, "plcOp": op,
		"handle": "fresh.test", "email": "fresh@example.com", "password": "password-fresh"}, "")
	if r.Status != http.StatusOK {
		t.Fatalf("createAccount with a genesis plcOp: %s", r)
	}
	token, _ := r.JSON()["accessJwt"].(string)
	data, err := (&plc.Client{URL: p.PLCURL}).GetDocumentData(ctx, did)
	if err != nil {
		t.Fatal(err)
	}
	if data.SigningKey() != key || data.PDSEndpoint() != p.URL {
		t.Fatalf("the PLC directory has %+v", data)
	}
	if r := p.Query("com.atproto.server.checkAccountStatus", nil, token); r.JSON()["activated"] != true {
		t.Fatalf("a new DID's account is not active: %s", r)
	}
	if r := p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": did, "collection": "app.bsky.feed.post",
		"record": map[string]any{"$type": "app.bsky.feed.post", "text": "hello", "createdAt": "2026-12-07T20:00:00Z"}}, token); r.Status != http.StatusOK {
		t.Fatalf("createRecord: %s", r)
	}
}

func newK256(t *testing.T) *atcrypto.PrivateKeyK256 {
	t.Helper()
	k, err := atcrypto.GeneratePrivateKeyK256()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustPub(t *testing.T, k atcrypto.PrivateKey) atcrypto.PublicKey {
	t.Helper()
	pub, err := k.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}
