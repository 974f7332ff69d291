package dpop

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/golang-jwt/jwt/v5"

	"github.com/pdsgo/pds/pds/oauth/internal/jws"
)

var (
	// ErrMissing: the request has no DPoP header.
	ErrMissing = errors.New("dpop: missing proof")
	// ErrUseNonce: the proof has no nonce or a stale one; answer with use_dpop_nonce and a fresh DPoP-Nonce.
	ErrUseNonce = errors.New("dpop: use_dpop_nonce")
	// ErrInvalid wraps every other reason a proof is refused (invalid_dpop_proof).
	ErrInvalid = errors.New("dpop: invalid proof")
	// ErrReplay: this proof's jti was already used.
	ErrReplay = errors.New("dpop: proof replayed")
)

// Defaults as @atproto/oauth-provider: jose's maxTokenAge 10 s with a clock tolerance of DPOP_NONCE_MAX_AGE.
const (
	DefaultMaxAge = 10 * time.Second
	DefaultLeeway = 3 * time.Minute
	maxJTILen     = 256
)

// Proof is a verified DPoP proof.
type Proof struct {
	JKT   string // RFC 7638 thumbprint of Key: what access tokens are bound to (cnf.jkt)
	JTI   string
	HTM   string
	HTU   string // as sent
	IAT   time.Time
	Nonce string
	ATH   string // "" unless the proof was made for a resource request
	Key   atcrypto.PublicKey
}

// Verifier checks DPoP proofs. Configure before use; Verify is safe for concurrent use.
type Verifier struct {
	Nonces *Nonces
	// MaxAge is how old iat may be, Leeway the clock skew allowed on top of it and into the future.
	MaxAge time.Duration
	Leeway time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Replay remembers jtis until the proof could no longer pass the iat check.
	Replay *ReplayCache
}

// NewVerifier returns a verifier with the reference's limits and an in-memory replay cache. A nil n gets a nonce
// source with a random secret.
func NewVerifier(n *Nonces) *Verifier {
	if n == nil {
		n = NewNonces(nil, 0)
	}
	v := &Verifier{Nonces: n, MaxAge: DefaultMaxAge, Leeway: DefaultLeeway}
	v.Replay = NewReplayCache(0)
	v.Replay.Now = v.now
	return v
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

type claims struct {
	jwt.RegisteredClaims
	HTM   string  `json:"htm"`
	HTU   string  `json:"htu"`
	Nonce *string `json:"nonce,omitempty"`
	ATH   *string `json:"ath,omitempty"`
}

func invalid(reason string, args ...any) error {
	return fmt.Errorf("%w: "+reason, append([]any{ErrInvalid}, args...)...)
}

// Verify checks the DPoP proof in header for a request with this method and URL (the server's public origin
// plus the request path; a query or fragment is ignored). accessToken is the token the request presents at a
// resource server ("" at the authorization server): the proof's ath must then hash it.
func (v *Verifier) Verify(header http.Header, method, reqURL string, accessToken string) (*Proof, error) {
	if method == "" {
		return nil, errors.New("dpop: Verify called without a method")
	}
	vals := header.Values("DPoP")
	switch {
	case len(vals) == 0:
		return nil, ErrMissing
	case len(vals) > 1:
		return nil, invalid("more than one DPoP header")
	case vals[0] == "":
		return nil, invalid("empty DPoP header")
	}

	var c claims
	tok, err := jws.Parse(vals[0], &c)
	if err != nil {
		return nil, invalid("malformed: %v", err)
	}
	if typ := strings.ToLower(tok.HeaderString("typ")); typ != "dpop+jwt" && typ != "application/dpop+jwt" {
		return nil, invalid("typ must be dpop+jwt")
	}
	if _, ok := tok.Header["crit"]; ok {
		return nil, invalid("unsupported crit header")
	}
	alg := tok.Alg()
	if !jws.Supported(alg) {
		return nil, invalid("unsupported alg %q", alg)
	}
	jwkMap, ok := tok.Header["jwk"].(map[string]any)
	if !ok {
		return nil, invalid("jwk header missing")
	}
	jwk, err := publicJWK(jwkMap)
	if err != nil {
		return nil, invalid("%v", err)
	}
	if jws.CurveAlg(jwk.Curve) != alg {
		return nil, invalid("alg %s does not match the jwk curve", alg)
	}
	key, err := atcrypto.ParsePublicJWK(jwk)
	if err != nil {
		return nil, invalid("bad jwk: %v", err)
	}
	if err := tok.Verify(key); err != nil {
		return nil, invalid("%v", err)
	}

	now := v.now()
	if c.IssuedAt == nil {
		return nil, invalid("iat missing")
	}
	iat := c.IssuedAt.Time
	if now.Sub(iat) > v.MaxAge+v.Leeway {
		return nil, invalid("iat too old")
	}
	if iat.Sub(now) > v.Leeway {
		return nil, invalid("iat in the future")
	}
	if c.ExpiresAt != nil && now.Sub(c.ExpiresAt.Time) > v.Leeway {
		return nil, invalid("expired")
	}
	if c.NotBefore != nil && c.NotBefore.Time.Sub(now) > v.Leeway {
		return nil, invalid("not yet valid")
	}
	if c.ID == "" || len(c.ID) > maxJTILen {
		return nil, invalid("jti missing or too long")
	}
	// RFC 9110 §9.1: method names are case-sensitive.
	if c.HTM != method {
		return nil, invalid("htm mismatch")
	}
	want, err := NormalizeHTU(reqURL)
	if err != nil {
		return nil, fmt.Errorf("dpop: request URL: %w", err)
	}
	got, err := NormalizeHTU(c.HTU)
	if err != nil {
		return nil, invalid("bad htu: %v", err)
	}
	if got != want {
		return nil, invalid("htu mismatch")
	}

	nonce := ""
	if c.Nonce != nil {
		nonce = *c.Nonce
	}
	if v.Nonces == nil || nonce == "" {
		return nil, ErrUseNonce
	}
	if !v.Nonces.Valid(nonce) {
		return nil, fmt.Errorf("%w: nonce mismatch", ErrUseNonce)
	}

	ath := ""
	if c.ATH != nil {
		ath = *c.ATH
	}
	if accessToken != "" {
		if subtle.ConstantTimeCompare([]byte(ath), []byte(AccessTokenHash(accessToken))) != 1 {
			return nil, invalid("ath mismatch")
		}
	} else if c.ATH != nil {
		return nil, invalid("ath not allowed without an access token")
	}

	jkt, err := thumbprint(jwk)
	if err != nil {
		return nil, invalid("%v", err)
	}

	// Remember the jti for as long as the iat check would let this proof through. The prefix keeps DPoP jtis
	// apart from other single-use values if a caller shares the cache (e.g. client-assertion jtis).
	if v.Replay != nil && v.Replay.Seen("DPoP "+c.ID, iat.Add(v.MaxAge+v.Leeway+time.Second)) {
		return nil, ErrReplay
	}

	return &Proof{JKT: jkt, JTI: c.ID, HTM: c.HTM, HTU: c.HTU, IAT: iat, Nonce: nonce, ATH: ath, Key: key}, nil
}

// privateMembers are JWK members that only private or symmetric keys have (RFC 7518 §6).
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// publicJWK reads the proof's jwk header: an EC public key, nothing private.
func publicJWK(m map[string]any) (atcrypto.JWK, error) {
	for _, p := range privateMembers {
		if _, ok := m[p]; ok {
			return atcrypto.JWK{}, fmt.Errorf("jwk contains private member %q", p)
		}
	}
	str := func(k string) string { s, _ := m[k].(string); return s }
	jwk := atcrypto.JWK{KeyType: str("kty"), Curve: str("crv"), X: str("x"), Y: str("y")}
	if jwk.KeyType != "EC" || jwk.Curve == "" || jwk.X == "" || jwk.Y == "" {
		return atcrypto.JWK{}, errors.New("jwk must be an EC public key with crv, x and y")
	}
	return jwk, nil
}

// AccessTokenHash is the ath value for an access token: base64url(SHA-256(token)).
func AccessTokenHash(accessToken string) string {
	h := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of an EC public JWK, base64url: the value of cnf.jkt.
func Thumbprint(jwk atcrypto.JWK) (string, error) {
	if jwk.KeyType != "EC" || jwk.Curve == "" || jwk.X == "" || jwk.Y == "" {
		return "", errors.New("dpop: thumbprint needs an EC JWK with crv, x and y")
	}
	return thumbprint(jwk)
}

// KeyThumbprint is Thumbprint of a public key's JWK.
func KeyThumbprint(key atcrypto.PublicKey) (string, error) {
	jwk, err := key.JWK()
	if err != nil {
		return "", err
	}
	return Thumbprint(*jwk)
}

func thumbprint(jwk atcrypto.JWK) (string, error) {
	// Required members only, in lexicographic order, no whitespace (RFC 7638 §3.2).
	b, err := json.Marshal(struct {
		Crv string `json:"crv"`
		Kty string `json:"kty"`
		X   string `json:"x"`
		Y   string `json:"y"`
	}{jwk.Curve, jwk.KeyType, jwk.X, jwk.Y})
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(h[:]), nil
}

// NormalizeHTU reduces an http(s) URL to what htu is compared on (RFC 9449 §4.3 with RFC 3986 §6.2.2-6.2.3
// normalisation): lower-case scheme and host, no default port, no user info, query or fragment, dot segments
// removed, "/" for an empty path.
func NormalizeHTU(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", errors.New("not an http(s) URL")
	}
	if u.User != nil {
		return "", errors.New("credentials in URL")
	}
	if u.Opaque != "" || u.Host == "" {
		return "", errors.New("no host")
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port := u.Port(); port != "" && !(scheme == "https" && port == "443") && !(scheme == "http" && port == "80") {
		host += ":" + port
	}
	p := removeDotSegments(u.EscapedPath())
	if p == "" {
		p = "/"
	}
	return scheme + "://" + host + p, nil
}

// removeDotSegments is RFC 3986 §5.2.4.
func removeDotSegments(in string) string {
	var out []string
	segs := strings.Split(in, "/")
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return strings.Join(out, "/")
}
