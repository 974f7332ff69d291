package xrpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/pdsgo/pds/lexicons"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testServer struct {
	url  string
	logs *syncBuf
	got  map[string]any // what the last handler saw
	mu   sync.Mutex
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	cat, err := lexicons.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{logs: &syncBuf{}}
	e := echo.New()
	e.HideBanner = true
	e.HTTPErrorHandler = ErrorHandler(slog.New(slog.NewTextHandler(ts.logs, nil)))
	r := NewRouter(e, cat)

	record := func(c echo.Context, m map[string]any) {
		ts.mu.Lock()
		ts.got = m
		ts.mu.Unlock()
	}
	r.Query("com.atproto.repo.listRecords", func(c echo.Context) error {
		record(c, map[string]any{
			"repo":    ParamString(c, "repo"),
			"limit":   ParamInt(c, "limit", -1),
			"reverse": ParamBool(c, "reverse", true),
			"cursor":  ParamString(c, "cursor"),
		})
		return c.JSON(200, map[string]any{"records": []any{}})
	})
	r.Query("app.bsky.actor.getProfiles", func(c echo.Context) error {
		record(c, map[string]any{"actors": ParamStrings(c, "actors")})
		return c.JSON(200, map[string]any{"profiles": []any{}})
	})
	r.Procedure("com.atproto.repo.createRecord", func(c echo.Context) error {
		var in struct {
			Repo       string          `json:"repo"`
			Collection string          `json:"collection"`
			Record     json.RawMessage `json:"record"`
		}
		if err := ReadJSON(c, RecordBodyLimit, &in); err != nil {
			return err
		}
		rec, err := ParseRecord(in.Record)
		if err != nil {
			return err
		}
		st, err := ValidateRecord(cat, in.Collection, rec, ValidateAuto)
		if err != nil {
			return err
		}
		return c.JSON(200, map[string]any{"cid": rec.CID.String(), "validationStatus": st})
	})
	r.Procedure("com.atproto.server.deleteSession", func(c echo.Context) error {
		return fmt.Errorf("query failed: %w", errors.New("sqlite: no such table: secret_sessions"))
	})
	r.Procedure("com.atproto.server.refreshSession", func(c echo.Context) error {
		return fmt.Errorf("wrapped: %w", Forbidden("Nope"))
	})
	r.Query("com.atproto.server.describeServer", func(c echo.Context) error {
		return RateLimitExceeded("Rate Limit Exceeded").WithHeader("RateLimit-Remaining", "0")
	})
	r.Query("com.atproto.server.getSession", func(c echo.Context) error {
		return echo.NewHTTPError(400, "parser said: offset 7 near 'hunter2'")
	})
	r.Procedure("com.atproto.server.createSession", func(c echo.Context) error {
		var in map[string]any
		if err := ReadJSON(c, 64, &in); err != nil {
			return err
		}
		return c.NoContent(200)
	})

	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	ts.url = srv.URL
	return ts
}

type xrpcResp struct {
	status int
	header http.Header
	body   string
	Error  string `json:"error"`
	Msg    string `json:"message"`
}

func (ts *testServer) do(t *testing.T, method, path, ctype string, body io.Reader, hdr ...string) xrpcResp {
	t.Helper()
	req, err := http.NewRequest(method, ts.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	out := xrpcResp{status: res.StatusCode, header: res.Header, body: string(b)}
	if len(b) > 0 && strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(b, &out)
	}
	return out
}

func expect(t *testing.T, r xrpcResp, status int, name, msgSubstr string) {
	t.Helper()
	if r.status != status || r.Error != name || !strings.Contains(r.Msg, msgSubstr) {
		t.Errorf("got %d %s %q (body %s); want %d %s containing %q", r.status, r.Error, r.Msg, r.body, status, name, msgSubstr)
	}
}

func TestRouterVerbsAndUnknown(t *testing.T) {
	ts := newTestServer(t)
	expect(t, ts.do(t, "POST", "/xrpc/com.atproto.repo.listRecords?repo=alice.test&collection=app.bsky.feed.post", "application/json", strings.NewReader("{}")),
		400, "InvalidRequest", "Incorrect HTTP method")
	expect(t, ts.do(t, "GET", "/xrpc/com.atproto.repo.createRecord", "", nil), 400, "InvalidRequest", "Incorrect HTTP method")
	expect(t, ts.do(t, "PUT", "/xrpc/com.atproto.repo.createRecord", "", nil), 400, "InvalidRequest", "Incorrect HTTP method")
	expect(t, ts.do(t, "GET", "/xrpc/com.example.notThere", "", nil), 501, "MethodNotImplemented", "Method Not Implemented")
	expect(t, ts.do(t, "POST", "/xrpc/com.example.notThere", "application/json", strings.NewReader("{}")), 501, "MethodNotImplemented", "")
	expect(t, ts.do(t, "GET", "/xrpc/not_an_nsid", "", nil), 400, "InvalidRequest", "NSID")
	expect(t, ts.do(t, "GET", "/nothing/here", "", nil), 404, "NotFound", "Not Found")

	// HEAD on a query runs it (no body)
	r := ts.do(t, "HEAD", "/xrpc/com.atproto.repo.listRecords?repo=alice.test&collection=app.bsky.feed.post", "", nil)
	if r.status != 200 || r.body != "" {
		t.Errorf("HEAD: %d %q", r.status, r.body)
	}
}

func TestRouterFallback(t *testing.T) {
	e := echo.New()
	e.HTTPErrorHandler = ErrorHandler(slog.New(slog.NewTextHandler(io.Discard, nil)))
	r := NewRouter(e, nil)
	r.SetFallback(func(c echo.Context) error {
		return c.String(299, "proxied "+MethodNSID(c))
	})
	srv := httptest.NewServer(e)
	defer srv.Close()
	res, err := http.Get(srv.URL + "/xrpc/app.bsky.feed.getTimeline")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 299 || string(b) != "proxied app.bsky.feed.getTimeline" {
		t.Fatalf("fallback: %d %q", res.StatusCode, b)
	}
}

func TestRouterParams(t *testing.T) {
	ts := newTestServer(t)
	base := "/xrpc/com.atproto.repo.listRecords?collection=app.bsky.feed.post"
	expect(t, ts.do(t, "GET", base, "", nil), 400, "InvalidRequest", `Params must have the property "repo"`)
	expect(t, ts.do(t, "GET", base+"&repo=alice.test&limit=101", "", nil), 400, "InvalidRequest", "limit can not be greater than 100")
	expect(t, ts.do(t, "GET", base+"&repo=alice.test&limit=0", "", nil), 400, "InvalidRequest", "limit can not be less than 1")
	expect(t, ts.do(t, "GET", base+"&repo=alice.test&limit=ten", "", nil), 400, "InvalidRequest", "limit must be an integer")
	expect(t, ts.do(t, "GET", base+"&repo=alice.test&reverse=yes", "", nil), 400, "InvalidRequest", "reverse must be a boolean")
	expect(t, ts.do(t, "GET", base+"&repo=-bad-", "", nil), 400, "InvalidRequest", "repo must be a valid did or handle")
	expect(t, ts.do(t, "GET", "/xrpc/com.atproto.repo.listRecords?repo=alice.test&collection=notnsid", "", nil), 400, "InvalidRequest", "collection must be a valid nsid")

	r := ts.do(t, "GET", base+"&repo=did:plc:abc123&limit=7&reverse=false", "", nil)
	if r.status != 200 {
		t.Fatalf("valid params: %d %s", r.status, r.body)
	}
	ts.mu.Lock()
	got := ts.got
	ts.mu.Unlock()
	if got["repo"] != "did:plc:abc123" || got["limit"] != 7 || got["reverse"] != false || got["cursor"] != "" {
		t.Errorf("typed params: %#v", got)
	}
	// lexicon default (limit 50) when absent; def argument when the lexicon has none
	ts.do(t, "GET", base+"&repo=alice.test", "", nil)
	ts.mu.Lock()
	got = ts.got
	ts.mu.Unlock()
	if got["limit"] != 50 || got["reverse"] != true {
		t.Errorf("defaults: %#v", got)
	}

	// arrays
	r = ts.do(t, "GET", "/xrpc/app.bsky.actor.getProfiles?actors=alice.test&actors=did:plc:xyz", "", nil)
	if r.status != 200 {
		t.Fatalf("array params: %d %s", r.status, r.body)
	}
	ts.mu.Lock()
	got = ts.got
	ts.mu.Unlock()
	if a, _ := got["actors"].([]string); len(a) != 2 || a[0] != "alice.test" || a[1] != "did:plc:xyz" {
		t.Errorf("array: %#v", got)
	}
	expect(t, ts.do(t, "GET", "/xrpc/app.bsky.actor.getProfiles?actors=alice.test&actors=%20bad", "", nil), 400, "InvalidRequest", "actors/1 must be a valid did or handle")
	many := "/xrpc/app.bsky.actor.getProfiles?actors=a.test" + strings.Repeat("&actors=a.test", 25)
	expect(t, ts.do(t, "GET", many, "", nil), 400, "InvalidRequest", "actors must not have more than 25 elements")
}

func validCreate(text string) string {
	return `{"repo":"alice.test","collection":"app.bsky.feed.post","record":{"$type":"app.bsky.feed.post","text":` +
		text + `,"createdAt":"2024-01-01T00:00:00.000Z"}}`
}

func TestBodies(t *testing.T) {
	ts := newTestServer(t)
	const path = "/xrpc/com.atproto.repo.createRecord"
	const js = "application/json"

	r := ts.do(t, "POST", path, js, strings.NewReader(validCreate(`"hello"`)))
	if r.status != 200 || !strings.Contains(r.body, `"validationStatus":"valid"`) || !strings.Contains(r.body, `"cid":"bafyrei`) {
		t.Fatalf("valid create: %d %s", r.status, r.body)
	}

	// size: announced by Content-Length, and streamed without one
	big := validCreate(`"` + strings.Repeat("a", RecordBodyLimit) + `"`)
	expect(t, ts.do(t, "POST", path, js, strings.NewReader(big)), 413, "PayloadTooLarge", "")
	expect(t, ts.do(t, "POST", path, js, io.MultiReader(strings.NewReader(big))), 413, "PayloadTooLarge", "")
	expect(t, ts.do(t, "POST", "/xrpc/com.atproto.server.createSession", js, strings.NewReader(`{"identifier":"`+strings.Repeat("x", 100)+`"}`)),
		413, "PayloadTooLarge", "")

	// encoding
	expect(t, ts.do(t, "POST", path, "text/plain", strings.NewReader(validCreate(`"x"`))), 400, "InvalidRequest", "Wrong request encoding")
	expect(t, ts.do(t, "POST", path, "", strings.NewReader(validCreate(`"x"`))), 400, "InvalidRequest", "Content-Type")
	if r := ts.do(t, "POST", path, "application/json; charset=utf-8", strings.NewReader(validCreate(`"x"`))); r.status != 200 {
		t.Errorf("charset param: %d %s", r.status, r.body)
	}

	// malformed JSON: no parser text, no echo of the body
	r = ts.do(t, "POST", path, js, strings.NewReader(`{"repo": "alice.test", "SECRETTOKEN`))
	expect(t, r, 400, "InvalidRequest", "Invalid JSON body")
	if strings.Contains(r.body, "SECRETTOKEN") || strings.Contains(r.body, "unexpected") {
		t.Errorf("error echoes the body or parser: %s", r.body)
	}
	expect(t, ts.do(t, "POST", path, js, strings.NewReader(`[1,2]`)), 400, "InvalidRequest", "must be a JSON object")
	expect(t, ts.do(t, "POST", path, js, strings.NewReader(validCreate(`"x"`)+`{}`)), 400, "InvalidRequest", "Invalid JSON body")
	expect(t, ts.do(t, "POST", path, js, strings.NewReader("")), 400, "InvalidRequest", "required")

	// invalid UTF-8 (raw byte) and a lone surrogate escape
	expect(t, ts.do(t, "POST", path, js, strings.NewReader(validCreate("\"bad \xff byte\""))), 400, "InvalidRequest", "UTF-8")
	expect(t, ts.do(t, "POST", path, js, strings.NewReader(validCreate(`"lone \ud800 half"`))), 400, "InvalidRequest", "surrogate")

	// data model inside the body
	expect(t, ts.do(t, "POST", path, js, strings.NewReader(validCreate(`1.5`))), 400, "InvalidRequest", "floating-point")
	expect(t, ts.do(t, "POST", path, js, strings.NewReader(validCreate(`9007199254740993`))), 400, "InvalidRequest", "out of range")
	expect(t, ts.do(t, "POST", path, js, strings.NewReader(`{"repo":"a.test","repo":"b.test"}`)), 400, "InvalidRequest", "duplicate")

	// lexicon input schema
	expect(t, ts.do(t, "POST", path, js, strings.NewReader(`{"collection":"app.bsky.feed.post","record":{"$type":"x.y.z"}}`)),
		400, "InvalidRequest", `Input must have the property "repo"`)
	expect(t, ts.do(t, "POST", path, js, strings.NewReader(`{"repo":123,"collection":"app.bsky.feed.post","record":{"$type":"x.y.z"}}`)),
		400, "InvalidRequest", "Invalid input")
	expect(t, ts.do(t, "POST", path, js, strings.NewReader(`{"repo":"alice.test","collection":"not an nsid","record":{"$type":"x.y.z"}}`)),
		400, "InvalidRequest", "Invalid input")

	// record lexicon failure and $type mismatch
	expect(t, ts.do(t, "POST", path, js, strings.NewReader(validCreate(`42`))), 400, "InvalidRequest", "Invalid app.bsky.feed.post record: ")
	expect(t, ts.do(t, "POST", path, js, strings.NewReader(`{"repo":"alice.test","collection":"app.bsky.feed.like","record":{"$type":"app.bsky.feed.post","text":"x","createdAt":"2024-01-01T00:00:00Z"}}`)),
		400, "InvalidRequest", "Invalid $type: expected app.bsky.feed.like, got app.bsky.feed.post")
	r = ts.do(t, "POST", path, js, strings.NewReader(`{"repo":"alice.test","collection":"com.example.thing","record":{"$type":"com.example.thing","n":1}}`))
	if r.status != 200 || !strings.Contains(r.body, `"validationStatus":"unknown"`) {
		t.Errorf("unknown collection: %d %s", r.status, r.body)
	}
}

func TestErrorHandlerHidesInternals(t *testing.T) {
	ts := newTestServer(t)
	r := ts.do(t, "POST", "/xrpc/com.atproto.server.deleteSession", "", nil)
	expect(t, r, 500, "InternalServerError", "Internal Server Error")
	if strings.Contains(r.body, "secret_sessions") || strings.Contains(r.body, "sqlite") {
		t.Errorf("internal error leaked: %s", r.body)
	}
	if !strings.Contains(ts.logs.String(), "secret_sessions") {
		t.Errorf("internal error not logged: %q", ts.logs.String())
	}

	expect(t, ts.do(t, "POST", "/xrpc/com.atproto.server.refreshSession", "", nil), 403, "Forbidden", "Nope")

	r = ts.do(t, "GET", "/xrpc/com.atproto.server.describeServer", "", nil)
	expect(t, r, 429, "RateLimitExceeded", "Rate Limit Exceeded")
	if r.header.Get("RateLimit-Remaining") != "0" {
		t.Errorf("error header not written: %v", r.header)
	}

	r = ts.do(t, "GET", "/xrpc/com.atproto.server.getSession", "", nil)
	expect(t, r, 400, "InvalidRequest", "Bad Request")
	if strings.Contains(r.body, "hunter2") {
		t.Errorf("echo HTTPError message leaked: %s", r.body)
	}
}

func TestToErrorDirect(t *testing.T) {
	cases := []struct {
		err    error
		status int
		name   string
		msg    string
		hidden bool
	}{
		{InvalidRequest("bad %s", "thing"), 400, "InvalidRequest", "bad thing", false},
		{InvalidRequest("100% literal"), 400, "InvalidRequest", "100% literal", false},
		{fmt.Errorf("ctx: %w", ExpiredToken("Token has expired")), 400, "ExpiredToken", "Token has expired", false},
		{InternalServerError("db is on fire"), 500, "InternalServerError", "Internal Server Error", true},
		{&Error{Status: 200, Name: "Weird"}, 500, "InternalServerError", "Internal Server Error", true},
		{&Error{Status: 404}, 404, "NotFound", "", false},
		{echo.ErrMethodNotAllowed, 405, "MethodNotAllowed", "Method Not Allowed", false},
		{echo.ErrStatusRequestEntityTooLarge, 413, "PayloadTooLarge", "Request entity too large", false},
		{&http.MaxBytesError{Limit: 10}, 413, "PayloadTooLarge", "Request entity too large", false},
		{errors.New("boom"), 500, "InternalServerError", "Internal Server Error", true},
	}
	for i, tc := range cases {
		xe, hidden := ToError(tc.err)
		if xe.Status != tc.status || xe.Name != tc.name || xe.Message != tc.msg || hidden != tc.hidden {
			t.Errorf("%d: got %d %s %q hidden=%v", i, xe.Status, xe.Name, xe.Message, hidden)
		}
	}
	// message omitted when empty
	e := echo.New()
	rec := httptest.NewRecorder()
	c := e.NewContext(httptest.NewRequest("GET", "/x", nil), rec)
	ErrorHandler(nil)(&Error{Status: 400, Name: "InvalidRequest"}, c)
	if strings.TrimSpace(rec.Body.String()) != `{"error":"InvalidRequest"}` {
		t.Errorf("empty message: %s", rec.Body.String())
	}
}
