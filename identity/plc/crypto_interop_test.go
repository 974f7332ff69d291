package plc

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/mr-tron/base58"
)

// TestInteropSignatures runs the official signature vectors through the verifier PLC operations use: low-S
// compact signatures verify; high-S and DER-encoded ones are refused.
func TestInteropSignatures(t *testing.T) {
	raw, err := os.ReadFile("testdata/interop/crypto/signature-fixtures.json")
	if err != nil {
		t.Fatal(err)
	}
	var fixtures []struct {
		Comment         string `json:"comment"`
		MessageBase64   string `json:"messageBase64"`
		PublicKeyDid    string `json:"publicKeyDid"`
		SignatureBase64 string `json:"signatureBase64"`
		ValidSignature  bool   `json:"validSignature"`
	}
	if err := json.Unmarshal(raw, &fixtures); err != nil {
		t.Fatal(err)
	}
	if len(fixtures) < 6 {
		t.Fatalf("only %d fixtures", len(fixtures))
	}
	for _, f := range fixtures {
		msg, err := base64.RawStdEncoding.DecodeString(f.MessageBase64)
		if err != nil {
			t.Fatalf("%s: message: %v", f.Comment, err)
		}
		// PLC signatures travel as unpadded base64url.
		sig := strings.NewReplacer("+", "-", "/", "_").Replace(strings.TrimRight(f.SignatureBase64, "="))
		_, err = verifyAny(msg, sig, []string{f.PublicKeyDid})
		if f.ValidSignature && err != nil {
			t.Errorf("%s: valid signature refused: %v", f.Comment, err)
		}
		if !f.ValidSignature && err == nil {
			t.Errorf("%s: invalid signature accepted", f.Comment)
		}
	}
}

// TestInteropDIDKeys checks that private keys map to the expected did:key (the form rotation keys take).
func TestInteropDIDKeys(t *testing.T) {
	for _, file := range []string{"w3c_didkey_K256.json", "w3c_didkey_P256.json"} {
		raw, err := os.ReadFile("testdata/interop/crypto/" + file)
		if err != nil {
			t.Fatal(err)
		}
		var vecs []struct {
			PrivateKeyBytesHex    string `json:"privateKeyBytesHex"`
			PrivateKeyBytesBase58 string `json:"privateKeyBytesBase58"`
			PublicDidKey          string `json:"publicDidKey"`
		}
		if err := json.Unmarshal(raw, &vecs); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, v := range vecs {
			var b []byte
			if v.PrivateKeyBytesHex != "" {
				b, err = hex.DecodeString(v.PrivateKeyBytesHex)
			} else {
				b, err = base58.Decode(v.PrivateKeyBytesBase58)
			}
			if err != nil {
				t.Fatal(err)
			}
			var key atcrypto.PrivateKey
			if strings.Contains(file, "K256") {
				key, err = atcrypto.ParsePrivateBytesK256(b)
			} else {
				key, err = atcrypto.ParsePrivateBytesP256(b)
			}
			if err != nil {
				t.Fatal(err)
			}
			pub, err := key.PublicKey()
			if err != nil {
				t.Fatal(err)
			}
			if pub.DIDKey() != v.PublicDidKey {
				t.Errorf("%s: got %s want %s", file, pub.DIDKey(), v.PublicDidKey)
			}
			n++
		}
		if n == 0 {
			t.Errorf("%s: no vectors", file)
		}
	}
}
