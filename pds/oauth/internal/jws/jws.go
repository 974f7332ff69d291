// Package jws checks compact JWS signatures made with atproto keys (ES256 on P-256, ES256K on secp256k1) without
// going through golang-jwt's global signing-method registry.
//
// Why: importing indigo's atproto/auth or atproto/auth/oauth replaces jwt's "ES256" method process-wide (its key
// must then be an atcrypto.PublicKey, and "ES256K" only exists while atproto/auth is linked). Verifying here with
// atcrypto directly behaves the same whichever of those packages the binary links. golang-jwt still does the
// segment decoding.
package jws

import (
	"errors"
	"fmt"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/golang-jwt/jwt/v5"
)

// MaxTokenLen bounds what is decoded at all: DPoP proofs and client assertions are a few hundred bytes.
const MaxTokenLen = 8 << 10

// Token is a decoded, not yet verified, compact JWS.
type Token struct {
	Header       map[string]any
	SigningInput string // header.payload, as signed
	Signature    []byte
}

// Alg is the header's alg ("" when absent or not a string).
func (t *Token) Alg() string {
	s, _ := t.Header["alg"].(string)
	return s
}

// HeaderString returns a string header member ("" when absent or not a string).
func (t *Token) HeaderString(name string) string {
	s, _ := t.Header[name].(string)
	return s
}

// Parse decodes a compact JWS and unmarshals its payload into claims. The signature is not checked.
func Parse(token string, claims jwt.Claims) (*Token, error) {
	if len(token) > MaxTokenLen {
		return nil, errors.New("token too large")
	}
	p := jwt.NewParser()
	tok, parts, err := p.ParseUnverified(token, claims)
	// An alg golang-jwt has no method registered for (ES256K without atproto/auth, "none", ...) surfaces as
	// ErrTokenUnverifiable after header and claims were decoded: the caller checks the alg itself.
	if err != nil && !(errors.Is(err, jwt.ErrTokenUnverifiable) && tok != nil && tok.Header != nil && len(parts) == 3) {
		return nil, err
	}
	sig, err := p.DecodeSegment(parts[2])
	if err != nil {
		return nil, fmt.Errorf("signature encoding: %w", err)
	}
	return &Token{Header: tok.Header, SigningInput: parts[0] + "." + parts[1], Signature: sig}, nil
}

// KeyAlg is the JWS alg that goes with an atproto key type.
func KeyAlg(key atcrypto.PublicKey) string {
	switch key.(type) {
	case *atcrypto.PublicKeyP256:
		return "ES256"
	case *atcrypto.PublicKeyK256:
		return "ES256K"
	}
	return ""
}

// Verify checks the signature with key, which must be of the type alg names. ECDSA signatures are accepted with
// either S value (OAuth libraries do not normalise to low-S as atproto records must).
func (t *Token) Verify(key atcrypto.PublicKey) error {
	alg := t.Alg()
	if alg == "" || KeyAlg(key) != alg {
		return fmt.Errorf("alg %q does not match the key", alg)
	}
	if len(t.Signature) != 64 {
		return errors.New("bad signature length")
	}
	if err := key.HashAndVerifyLenient([]byte(t.SigningInput), t.Signature); err != nil {
		return errors.New("bad signature")
	}
	return nil
}

// Supported reports whether alg is one this package verifies.
func Supported(alg string) bool { return alg == "ES256" || alg == "ES256K" }

// CurveAlg is the alg that goes with a JWK curve name.
func CurveAlg(crv string) string {
	switch crv {
	case "P-256":
		return "ES256"
	case "secp256k1":
		return "ES256K"
	}
	return ""
}
