// Package stdjwttest checks the dpop package in a binary that does not link indigo's atproto/auth packages, so
// golang-jwt's ES256 method is its own (it wants *ecdsa keys) and ES256K is not registered at all. The dpop
// package's own tests link indigo's OAuth client, which replaces both.
package stdjwttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/golang-jwt/jwt/v5"

	"github.com/pdsgo/pds/pds/oauth/dpop"
)

const htu = "https://pds.example.com/oauth/par"

func TestRegistryIsStock(t *testing.T) {
	if _, ok := jwt.GetSigningMethod("ES256").(*jwt.SigningMethodECDSA); !ok {
		t.Fatalf("ES256 method is %T: this binary links something that replaced it", jwt.GetSigningMethod("ES256"))
	}
	if jwt.GetSigningMethod("ES256K") != nil {
		t.Fatal("ES256K registered: this binary links indigo atproto/auth")
	}
}

// A proof made by golang-jwt's stock ES256 with a crypto/ecdsa key: a generic JOSE client.
func TestStockES256Proof(t *testing.T) {
	v := dpop.NewVerifier(nil)
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pad := func(b []byte) string {
		out := make([]byte, 32)
		copy(out[32-len(b):], b)
		return base64.RawURLEncoding.EncodeToString(out)
	}
	jwk := map[string]any{"kty": "EC", "crv": "P-256", "x": pad(priv.X.Bytes()), "y": pad(priv.Y.Bytes())}
	mk := func(nonce string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
			"jti": rand.Text(), "htm": "POST", "htu": htu, "iat": time.Now().Unix(), "nonce": nonce,
		})
		tok.Header["typ"] = "dpop+jwt"
		tok.Header["jwk"] = jwk
		s, err := tok.SignedString(priv)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	h := http.Header{}
	h.Set("DPoP", mk(v.Nonces.Current()))
	p, err := v.Verify(h, "POST", htu, "")
	if err != nil {
		t.Fatalf("stock ES256 proof refused: %v", err)
	}
	want, _ := dpop.Thumbprint(atcrypto.JWK{KeyType: "EC", Curve: "P-256", X: jwk["x"].(string), Y: jwk["y"].(string)})
	if p.JKT != want {
		t.Fatalf("jkt %s, want %s", p.JKT, want)
	}
	h.Set("DPoP", mk("not-a-nonce"))
	if _, err := v.Verify(h, "POST", htu, ""); !errors.Is(err, dpop.ErrUseNonce) {
		t.Fatalf("bad nonce: %v", err)
	}
}

// ES256K verifies even though golang-jwt has no method for it in this binary.
func TestES256KWithoutRegistry(t *testing.T) {
	v := dpop.NewVerifier(nil)
	priv, err := atcrypto.GeneratePrivateKeyK256()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := priv.PublicKey()
	j, _ := pub.JWK()
	hb, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "ES256K", "jwk": j})
	cb, _ := json.Marshal(map[string]any{"jti": rand.Text(), "htm": "POST", "htu": htu, "iat": time.Now().Unix(), "nonce": v.Nonces.Current()})
	in := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb)
	sig, err := priv.HashAndSign([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("DPoP", in+"."+base64.RawURLEncoding.EncodeToString(sig))
	if _, err := v.Verify(h, "POST", htu, ""); err != nil {
		t.Fatalf("ES256K proof refused: %v", err)
	}
	// And "none" is still refused when the registry has no such method either.
	hb, _ = json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": j})
	h.Set("DPoP", base64.RawURLEncoding.EncodeToString(hb)+"."+base64.RawURLEncoding.EncodeToString(cb)+".")
	if _, err := v.Verify(h, "POST", htu, ""); !errors.Is(err, dpop.ErrInvalid) {
		t.Fatalf("alg none: %v", err)
	}
}
