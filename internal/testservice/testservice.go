// Package testservice is a stand-in for the services a PDS proxies to (an AppView, a chat service, a labeler)
// in tests: an HTTP server on loopback that checks every incoming service-auth token with indigo's
// ServiceAuthValidator against the real PLC directory (issuer key, aud, lxm, exp), records the calls, and
// answers with per-method handlers.
package testservice

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/auth"
	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/golang-jwt/jwt/v5"

	"github.com/pdsgo/pds/identity/plc"
)

// Service is a running test service.
type Service struct {
	DID string // the token audience it expects (settable before the first call)
	URL string
	Dir identity.Directory // resolves token issuers (the PLC directory)

	mu       sync.Mutex
	calls    []*Call
	handlers map[string]http.HandlerFunc
	audFor   map[string]string
	lxmFor   map[string]string
	public   map[string]bool
}

// Call is one request the service received; Iss and Claims are set when its token was verified.
type Call struct {
	NSID   string
	Method string
	Header http.Header
	Query  url.Values
	Body   []byte
	Iss    string
	Claims jwt.MapClaims
}

// Start starts a service with DID did whose token issuers resolve through the PLC directory at plcURL. It
// stops when the test ends.
func Start(t testing.TB, plcURL, did string) *Service {
	t.Helper()
	s := &Service{DID: did, handlers: map[string]http.HandlerFunc{}, audFor: map[string]string{},
		lxmFor: map[string]string{}, public: map[string]bool{}}
	s.Dir = &identity.BaseDirectory{PLCURL: plcURL, SkipHandleVerification: true}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Handle sets the handler of a method; a method without handler is answered 501.
func (s *Service) Handle(nsid string, h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[nsid] = h
}

// Expect overrides the aud and lxm a method's token must carry (default: the service's DID and the method).
func (s *Service) Expect(nsid, aud, lxm string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.audFor[nsid], s.lxmFor[nsid] = aud, lxm
}

// Public marks a method as callable without a token (it is still checked when sent).
func (s *Service) Public(nsid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.public[nsid] = true
}

func (s *Service) serve(w http.ResponseWriter, r *http.Request) {
	nsid := strings.TrimPrefix(r.URL.Path, "/xrpc/")
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	c := &Call{NSID: nsid, Method: r.Method, Header: r.Header.Clone(), Query: r.URL.Query(), Body: body}
	s.mu.Lock()
	s.calls = append(s.calls, c)
	h := s.handlers[nsid]
	aud, lxm := s.DID, nsid
	if a, ok := s.audFor[nsid]; ok {
		aud, lxm = a, s.lxmFor[nsid]
	}
	public := s.public[nsid]
	s.mu.Unlock()
	if h == nil {
		WriteJSON(w, 501, map[string]string{"error": "MethodNotImplemented", "message": "test service: " + nsid})
		return
	}
	tok, hasTok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if hasTok || !public {
		iss, claims, err := Verify(r.Context(), s.Dir, tok, aud, lxm)
		if err != nil {
			WriteJSON(w, 401, map[string]string{"error": "BadJwt", "message": err.Error()})
			return
		}
		s.mu.Lock()
		c.Iss, c.Claims = iss, claims
		s.mu.Unlock()
	}
	h(w, r)
}

// Verify checks a service token as a real service would (lxm "" = any method) and returns its issuer and
// claims.
func Verify(ctx context.Context, dir identity.Directory, tok, aud, lxm string) (string, jwt.MapClaims, error) {
	v := auth.ServiceAuthValidator{Audience: aud, Dir: dir}
	var method *syntax.NSID
	if lxm != "" {
		m := syntax.NSID(lxm)
		method = &m
	}
	iss, err := v.Validate(ctx, tok, method)
	if err != nil {
		return "", nil, err
	}
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, claims); err != nil {
		return "", nil, err
	}
	return iss.String(), claims, nil
}

// Calls returns the calls received so far.
func (s *Service) Calls() []*Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Call(nil), s.calls...)
}

// Last returns the last call, failing the test when there was none.
func (s *Service) Last(t testing.TB) *Call {
	t.Helper()
	c := s.Calls()
	if len(c) == 0 {
		t.Fatal("the service got no call")
	}
	return c[len(c)-1]
}

// WriteJSON writes v as a JSON response.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// RegisterDID creates a did:plc in the PLC directory whose document lists the given services (id ->
// endpoint), as an AppView's or chat service's DID document does, and returns it.
func RegisterDID(t testing.TB, plcURL string, services map[string]string) string {
	t.Helper()
	key, err := atcrypto.GeneratePrivateKeyK256()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := key.PublicKey()
	op := &plc.Operation{
		Type:                plc.TypeOperation,
		RotationKeys:        []string{pub.DIDKey()},
		VerificationMethods: map[string]string{"atproto": pub.DIDKey()},
		AlsoKnownAs:         []string{},
		Services:            map[string]plc.Service{},
	}
	for id, endpoint := range services {
		op.Services[id] = plc.Service{Type: "TestService", Endpoint: endpoint}
	}
	if err := op.Sign(key); err != nil {
		t.Fatal(err)
	}
	did, err := op.DID()
	if err != nil {
		t.Fatal(err)
	}
	if err := (&plc.Client{URL: plcURL}).Submit(context.Background(), did, op); err != nil {
		t.Fatalf("registering %s: %v", did, err)
	}
	return did
}
