package dpop

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/auth/oauth"
)

// clock is a settable test clock shared by the verifier and its nonces.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestVerifier(t *testing.T) (*Verifier, *clock) {
	t.Helper()
	c := &clock{t: time.Now()}
	n := NewNonces([]byte("0123456789abcdef0123456789abcdef"), 0)
	n.Now = c.now
	v := NewVerifier(n)
	v.Now = c.now
	return v, c
}

func genP256(t *testing.T) *atcrypto.PrivateKeyP256 {
	t.Helper()
	k, err := atcrypto.GeneratePrivateKeyP256()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func hdr(proof string) http.Header {
	h := http.Header{}
	h.Set("DPoP", proof)
	return h
}

const tokenURL = "https://pds.example.com/oauth/token"

// sign builds a compact JWS by hand, so tests can make proofs indigo's client never would.
func sign(t *testing.T, priv atcrypto.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	hb, _ := json.Marshal(header)
	cb, _ := json.Marshal(claims)
	in := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb)
	sig, err := priv.HashAndSign([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func jwkMap(t *testing.T, priv atcrypto.PrivateKey) map[string]any {
	t.Helper()
	pub, err := priv.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	j, err := pub.JWK()
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"kty": j.KeyType, "crv": j.Curve, "x": j.X, "y": j.Y}
}

// proofParts returns a valid header and claim set for a token-endpoint request; tests change one thing.
func proofParts(t *testing.T, v *Verifier, priv atcrypto.PrivateKey, alg string) (map[string]any, map[string]any) {
	now := v.now()
	return map[string]any{"typ": "dpop+jwt", "alg": alg, "jwk": jwkMap(t, priv)},
		map[string]any{"jti": randID(), "htm": "POST", "htu": tokenURL, "iat": now.Unix(), "exp": now.Add(30 * time.Second).Unix(), "nonce": v.Nonces.Current()}
}

func randID() string { return rand.Text() }

// The positive control for the negatives below: indigo's own client proof verifies, with the nonce it was given.
func TestIndigoClientProof(t *testing.T) {
	v, _ := newTestVerifier(t)
	priv := genP256(t)

	// First contact: no nonce yet, as indigo's client starts. The caller answers use_dpop_nonce.
	p0, err := oauth.NewAuthDPoP("POST", tokenURL, "", priv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(hdr(p0), "POST", tokenURL, ""); !errors.Is(err, ErrUseNonce) {
		t.Fatalf("no nonce: got %v, want ErrUseNonce", err)
	}

	p1, err := oauth.NewAuthDPoP("POST", tokenURL, v.Nonces.Current(), priv)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := v.Verify(hdr(p1), "POST", tokenURL, "")
	if err != nil {
		t.Fatalf("valid proof refused: %v", err)
	}
	want, err := KeyThumbprint(mustPub(t, priv))
	if err != nil {
		t.Fatal(err)
	}
	if proof.JKT != want || proof.HTM != "POST" || proof.HTU != tokenURL || proof.JTI == "" || proof.ATH != "" {
		t.Fatalf("proof fields: %+v (want jkt %s)", proof, want)
	}
	if !proof.Key.Equal(mustPub(t, priv)) {
		t.Fatal("proof key differs from the signer's")
	}

	// The same proof again is a replay.
	if _, err := v.Verify(hdr(p1), "POST", tokenURL, ""); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: got %v, want ErrReplay", err)
	}
}

func mustPub(t *testing.T, priv atcrypto.PrivateKey) atcrypto.PublicKey {
	t.Helper()
	pub, err := priv.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// A resource request: indigo's session signs a host proof with ath over a real HTTP round trip.
func TestIndigoHostProofOverHTTP(t *testing.T) {
	v, _ := newTestVerifier(t)
	priv := genP256(t)
	const accessToken = "access-token-value"
	var srvURL string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "DPoP ")
		_, err := v.Verify(r.Header, r.Method, srvURL+r.URL.Path, tok)
		switch {
		case errors.Is(err, ErrUseNonce):
			w.Header().Set("DPoP-Nonce", v.Nonces.Current())
			w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce"`)
			w.WriteHeader(http.StatusUnauthorized)
		case err != nil:
			http.Error(w, err.Error(), http.StatusUnauthorized)
		default:
			io.WriteString(w, "ok")
		}
	}))
	defer srv.Close()
	srvURL = srv.URL

	sess := &oauth.ClientSession{
		Data:           &oauth.ClientSessionData{AccessToken: accessToken, AuthServerURL: srv.URL, HostURL: srv.URL},
		DPoPPrivateKey: priv,
	}
	do := func(tok string) *http.Response {
		reqURL := srv.URL + "/xrpc/com.atproto.repo.createRecord?x=1"
		proof, err := sess.NewHostDPoP("POST", strings.SplitN(reqURL, "?", 2)[0])
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("POST", reqURL, nil)
		req.Header.Set("Authorization", "DPoP "+tok)
		req.Header.Set("DPoP", proof)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := do(accessToken)
	if resp.StatusCode != 401 || resp.Header.Get("DPoP-Nonce") == "" {
		t.Fatalf("first call: status %d nonce %q, want 401 with a nonce", resp.StatusCode, resp.Header.Get("DPoP-Nonce"))
	}
	sess.Data.DPoPHostNonce = resp.Header.Get("DPoP-Nonce")
	if resp := do(accessToken); resp.StatusCode != 200 {
		t.Fatalf("with nonce: status %d", resp.StatusCode)
	}
	// Same key and nonce, but the token presented is not the one the proof hashed.
	if resp := do("another-token"); resp.StatusCode != 401 || resp.Header.Get("DPoP-Nonce") != "" {
		t.Fatalf("bad ath: status %d", resp.StatusCode)
	}
}

func TestNegatives(t *testing.T) {
	priv := genP256(t)
	other := genP256(t)
	cases := []struct {
		name   string
		mutate func(v *Verifier, c *clock, h, cl map[string]any) (hdrs http.Header, method, url, token string)
		want   error
		reason string
	}{
		{name: "wrong htm", want: ErrInvalid, reason: "htm", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			cl["htm"] = "GET"
			return nil, "", "", ""
		}},
		{name: "htm case", want: ErrInvalid, reason: "htm", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			cl["htm"] = "post"
			return nil, "", "", ""
		}},
		{name: "wrong htu path", want: ErrInvalid, reason: "htu", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			cl["htu"] = "https://pds.example.com/oauth/par"
			return nil, "", "", ""
		}},
		{name: "wrong htu host", want: ErrInvalid, reason: "htu", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			cl["htu"] = "https://evil.example.com/oauth/token"
			return nil, "", "", ""
		}},
		{name: "wrong htu scheme", want: ErrInvalid, reason: "htu", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			cl["htu"] = "http://pds.example.com/oauth/token"
			return nil, "", "", ""
		}},
		{name: "htu not a URL", want: ErrInvalid, reason: "htu", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			cl["htu"] = "/oauth/token"
			return nil, "", "", ""
		}},
		{name: "stale iat", want: ErrInvalid, reason: "iat", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			cl["iat"] = c.t.Add(-v.MaxAge - v.Leeway - 2*time.Second).Unix()
			delete(cl, "exp")
			return nil, "", "", ""
		}},
		{name: "future iat", want: ErrInvalid, reason: "iat", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			cl["iat"] = c.t.Add(v.Leeway + 2*time.Second).Unix()
			return nil, "", "", ""
		}},
		{name: "no iat", want: ErrInvalid, reason: "iat", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			delete(cl, "iat")
			return nil, "", "", ""
		}},
		{name: "expired", want: ErrInvalid, reason: "expired", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			cl["exp"] = c.t.Add(-v.Leeway - 2*time.Second).Unix()
			return nil, "", "", ""
		}},
		{name: "no jti", want: ErrInvalid, reason: "jti", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			delete(cl, "jti")
			return nil, "", "", ""
		}},
		{name: "missing nonce", want: ErrUseNonce, mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			delete(cl, "nonce")
			return nil, "", "", ""
		}},
		{name: "stale nonce", want: ErrUseNonce, reason: "nonce", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			// The nonce handed out now is accepted for this window and two more, not four rotations later.
			c.t = c.t.Add(4 * DefaultRotation)
			cl["iat"] = c.t.Unix()
			cl["exp"] = c.t.Add(30 * time.Second).Unix()
			return nil, "", "", ""
		}},
		{name: "forged nonce", want: ErrUseNonce, reason: "nonce", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			cl["nonce"] = NewNonces([]byte("another secret of thirty-two by."), 0).Current()
			return nil, "", "", ""
		}},
		{name: "nonce wrong type", want: ErrInvalid, reason: "malformed", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			cl["nonce"] = 12
			return nil, "", "", ""
		}},
		{name: "private key in jwk", want: ErrInvalid, reason: "private", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			h["jwk"].(map[string]any)["d"] = base64.RawURLEncoding.EncodeToString(make([]byte, 32))
			return nil, "", "", ""
		}},
		{name: "symmetric jwk", want: ErrInvalid, reason: "private", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			h["jwk"] = map[string]any{"kty": "oct", "k": "c2VjcmV0"}
			return nil, "", "", ""
		}},
		{name: "no jwk", want: ErrInvalid, reason: "jwk", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			delete(h, "jwk")
			return nil, "", "", ""
		}},
		{name: "jwk off curve", want: ErrInvalid, reason: "jwk", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			h["jwk"].(map[string]any)["y"] = base64.RawURLEncoding.EncodeToString(make([]byte, 32))
			return nil, "", "", ""
		}},
		{name: "wrong typ", want: ErrInvalid, reason: "typ", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			h["typ"] = "JWT"
			return nil, "", "", ""
		}},
		{name: "no typ", want: ErrInvalid, reason: "typ", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			delete(h, "typ")
			return nil, "", "", ""
		}},
		{name: "alg none", want: ErrInvalid, reason: "alg", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			h["alg"] = "none"
			return nil, "", "", ""
		}},
		{name: "alg HS256", want: ErrInvalid, reason: "alg", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			h["alg"] = "HS256"
			return nil, "", "", ""
		}},
		{name: "alg ES256K with a P-256 key", want: ErrInvalid, reason: "alg", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			h["alg"] = "ES256K"
			return nil, "", "", ""
		}},
		{name: "signed by another key than the jwk", want: ErrInvalid, reason: "signature", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			h["jwk"] = jwkMap(t, other)
			return nil, "", "", ""
		}},
		{name: "crit header", want: ErrInvalid, reason: "crit", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			h["crit"] = []string{"b64"}
			return nil, "", "", ""
		}},
		{name: "ath without access token", want: ErrInvalid, reason: "ath", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			cl["ath"] = AccessTokenHash("tok")
			return nil, "", "", ""
		}},
		{name: "missing ath with access token", want: ErrInvalid, reason: "ath", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			return nil, "", "", "tok"
		}},
		{name: "bad ath", want: ErrInvalid, reason: "ath", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			cl["ath"] = AccessTokenHash("some other token")
			return nil, "", "", "tok"
		}},
		{name: "verified against another method", want: ErrInvalid, reason: "htm", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			return nil, "GET", "", ""
		}},
		{name: "no header", want: ErrMissing, mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			return http.Header{}, "", "", ""
		}},
		{name: "empty header", want: ErrInvalid, reason: "empty", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			return http.Header{"Dpop": {""}}, "", "", ""
		}},
		{name: "garbage header", want: ErrInvalid, reason: "malformed", mutate: func(v *Verifier, c *clock, h, cl map[string]any) (http.Header, string, string, string) {
			return http.Header{"Dpop": {"not.a.jwt"}}, "", "", ""
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, c := newTestVerifier(t)
			// Positive control: the unmodified proof passes.
			h, cl := proofParts(t, v, priv, "ES256")
			if _, err := v.Verify(hdr(sign(t, priv, h, cl)), "POST", tokenURL, ""); err != nil {
				t.Fatalf("control refused: %v", err)
			}
			h, cl = proofParts(t, v, priv, "ES256")
			hdrs, method, u, tok := tc.mutate(v, c, h, cl)
			if hdrs == nil {
				hdrs = hdr(sign(t, priv, h, cl))
			}
			if method == "" {
				method = "POST"
			}
			if u == "" {
				u = tokenURL
			}
			_, err := v.Verify(hdrs, method, u, tok)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.reason != "" && !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("error %q does not mention %q", err, tc.reason)
			}
		})
	}
}

func TestBadSignature(t *testing.T) {
	v, _ := newTestVerifier(t)
	priv := genP256(t)
	h, cl := proofParts(t, v, priv, "ES256")
	good := sign(t, priv, h, cl)
	if _, err := v.Verify(hdr(good), "POST", tokenURL, ""); err != nil {
		t.Fatalf("control: %v", err)
	}
	h, cl = proofParts(t, v, priv, "ES256")
	p := sign(t, priv, h, cl)
	parts := strings.Split(p, ".")
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[10] ^= 0x01
	bad := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	if _, err := v.Verify(hdr(bad), "POST", tokenURL, ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("flipped signature bit: got %v", err)
	}
	// A payload swapped under a valid signature.
	h2, cl2 := proofParts(t, v, priv, "ES256")
	cl2["htu"] = "https://pds.example.com/oauth/par"
	other := strings.Split(sign(t, priv, h2, cl2), ".")
	swapped := parts[0] + "." + other[1] + "." + parts[2]
	if _, err := v.Verify(hdr(swapped), "POST", "https://pds.example.com/oauth/par", ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("swapped payload: got %v", err)
	}
	// Two DPoP headers.
	h3, cl3 := proofParts(t, v, priv, "ES256")
	two := http.Header{"Dpop": {sign(t, priv, h3, cl3), sign(t, priv, h3, cl3)}}
	if _, err := v.Verify(two, "POST", tokenURL, ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("two headers: got %v", err)
	}
}

func TestES256K(t *testing.T) {
	v, _ := newTestVerifier(t)
	priv, err := atcrypto.GeneratePrivateKeyK256()
	if err != nil {
		t.Fatal(err)
	}
	h, cl := proofParts(t, v, priv, "ES256K")
	p, err := v.Verify(hdr(sign(t, priv, h, cl)), "POST", tokenURL, "")
	if err != nil {
		t.Fatalf("ES256K proof refused: %v", err)
	}
	if _, ok := p.Key.(*atcrypto.PublicKeyK256); !ok {
		t.Fatalf("key type %T", p.Key)
	}
	h, cl = proofParts(t, v, priv, "ES256")
	if _, err := v.Verify(hdr(sign(t, priv, h, cl)), "POST", tokenURL, ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("ES256 header on a K-256 key: got %v", err)
	}
}

// The iat window edges: just inside passes, replays inside it fail, and the replay entry outlives the window.
func TestIATWindowAndReplayExpiry(t *testing.T) {
	v, c := newTestVerifier(t)
	priv := genP256(t)
	h, cl := proofParts(t, v, priv, "ES256")
	cl["iat"] = c.t.Add(-v.MaxAge - v.Leeway + 2*time.Second).Unix()
	delete(cl, "exp")
	p := sign(t, priv, h, cl)
	if _, err := v.Verify(hdr(p), "POST", tokenURL, ""); err != nil {
		t.Fatalf("old but inside the window: %v", err)
	}
	if _, err := v.Verify(hdr(p), "POST", tokenURL, ""); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	c.t = c.t.Add(5 * time.Second)
	v.Nonces.Now = c.now
	if _, err := v.Verify(hdr(p), "POST", tokenURL, ""); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "iat") {
		t.Fatalf("after the window: %v", err)
	}
}

func TestHTUNormalization(t *testing.T) {
	v, _ := newTestVerifier(t)
	priv := genP256(t)
	same := []struct{ htu, req string }{
		{"https://PDS.example.com/oauth/token", tokenURL},
		{"https://pds.example.com:443/oauth/token", tokenURL},
		{"https://pds.example.com/oauth/./x/../token", tokenURL},
		{"https://pds.example.com/oauth/token?a=b#frag", tokenURL}, // the reference ignores them (legacy clients)
		{tokenURL, tokenURL + "?query=1"},
		{"http://localhost:2583/xrpc/x", "http://localhost:2583/xrpc/x"},
		{"http://localhost:80/", "http://localhost"},
		{"http://[::1]:8080/a", "http://[::1]:8080/a"},
	}
	for _, s := range same {
		h, cl := proofParts(t, v, priv, "ES256")
		cl["htu"] = s.htu
		if _, err := v.Verify(hdr(sign(t, priv, h, cl)), "POST", s.req, ""); err != nil {
			t.Errorf("htu %q vs %q: %v", s.htu, s.req, err)
		}
	}
	differ := []struct{ htu, req string }{
		{"https://pds.example.com:8443/oauth/token", tokenURL},
		{"https://pds.example.com/oauth/token/", tokenURL},
		{"https://pds.example.com/OAUTH/token", tokenURL},
		{"https://user:pw@pds.example.com/oauth/token", tokenURL},
		{"ftp://pds.example.com/oauth/token", tokenURL},
	}
	for _, s := range differ {
		h, cl := proofParts(t, v, priv, "ES256")
		cl["htu"] = s.htu
		if _, err := v.Verify(hdr(sign(t, priv, h, cl)), "POST", s.req, ""); !errors.Is(err, ErrInvalid) {
			t.Errorf("htu %q vs %q: got %v, want ErrInvalid", s.htu, s.req, err)
		}
	}
}

func TestNonces(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	n := NewNonces([]byte("secret-secret-secret-secret-1234"), time.Minute)
	n.Now = c.now
	cur := n.Current()
	if !n.Valid(cur) {
		t.Fatal("current nonce invalid")
	}
	if n.Valid("") || n.Valid("x") {
		t.Fatal("garbage accepted")
	}
	// Handed out in window w (as w+1's value): valid through window w+2, not w+3.
	for i := 1; i <= 2; i++ {
		c.t = c.t.Add(time.Minute)
		if !n.Valid(cur) {
			t.Fatalf("nonce refused %d rotation(s) later", i)
		}
	}
	c.t = c.t.Add(time.Minute)
	if n.Valid(cur) {
		t.Fatal("nonce still valid 3 rotations later")
	}
	if n.Current() == cur {
		t.Fatal("nonce did not rotate")
	}
	// Same secret, same nonces (several servers); another secret, others.
	n2 := NewNonces([]byte("secret-secret-secret-secret-1234"), time.Minute)
	n2.Now = c.now
	if n2.Current() != n.Current() {
		t.Fatal("same secret, different nonce")
	}
	n3 := NewNonces(nil, time.Minute)
	n3.Now = c.now
	if n3.Valid(n.Current()) {
		t.Fatal("nonce from another secret accepted")
	}
}

func TestReplayCacheBounded(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	r := NewReplayCache(3)
	r.Now = c.now
	exp := c.t.Add(time.Minute)
	for _, k := range []string{"a", "b", "c"} {
		if r.Seen(k, exp) {
			t.Fatalf("%s seen on first use", k)
		}
	}
	if !r.Seen("a", exp) {
		t.Fatal("a not remembered")
	}
	// Full of live entries: fail closed.
	if !r.Seen("d", exp) {
		t.Fatal("full cache accepted a new key")
	}
	// Once they expire, room again, and expired keys are forgotten.
	c.t = exp
	if r.Seen("d", c.t.Add(time.Minute)) {
		t.Fatal("d refused after expiry sweep")
	}
	if r.Len() != 1 {
		t.Fatalf("len %d after sweep, want 1", r.Len())
	}
	if r.Seen("a", c.t.Add(time.Minute)) {
		t.Fatal("expired a still seen")
	}
}

// RFC 7638 §3.1 gives an RSA example only. The key is RFC 7515 A.3's; the expected value was computed separately
// (Python hashlib over the canonical JSON). The thumbprint is over {"crv","kty","x","y"} and ignores kid and use.
func TestThumbprint(t *testing.T) {
	jwk := atcrypto.JWK{KeyType: "EC", Curve: "P-256", X: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", Y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
	kid := "k1"
	withKid := jwk
	withKid.KeyID = &kid
	withKid.Use = "sig"
	a, err := Thumbprint(jwk)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Thumbprint(withKid)
	if a != b {
		t.Fatal("kid/use changed the thumbprint")
	}
	// sha256 of the canonical JSON, computed independently.
	if a != "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U" {
		t.Fatalf("thumbprint %s", a)
	}
	if _, err := Thumbprint(atcrypto.JWK{KeyType: "RSA"}); err == nil {
		t.Fatal("RSA accepted")
	}
}
