package jws

import (
	"crypto/elliptic"
	"encoding/base64"
	"math/big"
	"strings"
	"testing"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/golang-jwt/jwt/v5"
)

func signed(t *testing.T, priv atcrypto.PrivateKey, header string) string {
	t.Helper()
	in := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"jti":"x"}`))
	sig, err := priv.HashAndSign([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// OAuth clients (WebCrypto, jose) do not normalise ECDSA signatures to low S as atproto records must: a high-S
// signature of a valid proof verifies.
func TestHighSAccepted(t *testing.T) {
	priv, err := atcrypto.GeneratePrivateKeyP256()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := priv.PublicKey()
	tok := signed(t, priv, `{"alg":"ES256"}`)
	var c jwt.RegisteredClaims
	p, err := Parse(tok, &c)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(pub); err != nil {
		t.Fatalf("low-S control: %v", err)
	}
	n := elliptic.P256().Params().N
	s := new(big.Int).SetBytes(p.Signature[32:])
	high := new(big.Int).Sub(n, s).FillBytes(make([]byte, 32))
	p.Signature = append(append([]byte{}, p.Signature[:32]...), high...)
	if err := p.Verify(pub); err != nil {
		t.Fatalf("high-S signature refused: %v", err)
	}
	p.Signature = p.Signature[:63]
	if err := p.Verify(pub); err == nil {
		t.Fatal("63-byte signature accepted")
	}
}

func TestParseRefusals(t *testing.T) {
	priv, _ := atcrypto.GeneratePrivateKeyP256()
	k256, _ := atcrypto.GeneratePrivateKeyK256()
	pub, _ := priv.PublicKey()
	var c jwt.RegisteredClaims
	good := signed(t, priv, `{"alg":"ES256"}`)
	if _, err := Parse(good, &c); err != nil {
		t.Fatalf("control: %v", err)
	}
	for name, tok := range map[string]string{
		"two segments": "a.b",
		"too large":    good + strings.Repeat("A", MaxTokenLen),
		"bad header":   "!!!." + strings.SplitN(good, ".", 2)[1],
	} {
		if _, err := Parse(tok, &c); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	// The header's alg must be the key's: an ES256K token is not verified with a P-256 key, nor the reverse.
	kt, _ := Parse(signed(t, k256, `{"alg":"ES256K"}`), &c)
	if err := kt.Verify(pub); err == nil {
		t.Fatal("ES256K token verified with a P-256 key")
	}
	kpub, _ := k256.PublicKey()
	if err := kt.Verify(kpub); err != nil {
		t.Fatalf("ES256K control: %v", err)
	}
	lied, _ := Parse(signed(t, k256, `{"alg":"ES256"}`), &c)
	if err := lied.Verify(kpub); err == nil {
		t.Fatal("K-256 key accepted under alg ES256")
	}
}
