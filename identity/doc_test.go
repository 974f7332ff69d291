package identity

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
)

// A document in the form plc.directory renders today (Multikey, absolute
// key id); the legacy form is covered by identity/plc's directory test.
func TestCheckDocumentMultikey(t *testing.T) {
	k, err := atcrypto.GeneratePrivateKeyK256()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := k.PublicKey()
	did := "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
	doc, _ := json.Marshal(map[string]any{
		"@context":    []string{"https://www.w3.org/ns/did/v1"},
		"id":          did,
		"alsoKnownAs": []string{"at://alice.test"},
		"verificationMethod": []map[string]string{{
			"id": did + "#atproto", "type": "Multikey", "controller": did, "publicKeyMultibase": pub.Multibase(),
		}},
		"service": []map[string]string{{
			"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": "https://pds.example",
		}},
	})
	exp := Expect{DID: did, Handle: "ALICE.test", SigningKey: pub.DIDKey(), PDSEndpoint: "https://pds.example/"}
	if err := CheckDocument(doc, exp); err != nil {
		t.Fatal(err)
	}
	for name, e := range map[string]Expect{
		"did":      {DID: "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"},
		"handle":   {Handle: "bob.test"},
		"key":      {SigningKey: "did:key:zQ3shdPHwaMgdUPMxR5qJzjrhyYvAR8jeQ4TuKHLtYXoNXnT3"},
		"endpoint": {PDSEndpoint: "https://other.example"},
	} {
		if err := CheckDocument(doc, e); !errors.Is(err, ErrDocumentMismatch) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := CheckDocument(json.RawMessage(`{`), exp); err == nil {
		t.Error("bad JSON accepted")
	}
}
