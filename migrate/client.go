package migrate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// APIError is an XRPC error answer of a PDS.
type APIError struct {
	Method  string
	Status  int
	Name    string `json:"error"`
	Message string `json:"message"`
}

func (e *APIError) Error() string {
	msg := e.Name
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return fmt.Sprintf("%s: %s (HTTP %d)", e.Method, msg, e.Status)
}

// isAPIError reports whether err is an XRPC error with one of the given names (any name if none).
func isAPIError(err error, names ...string) bool {
	var ae *APIError
	if !errors.As(err, &ae) {
		return false
	}
	if len(names) == 0 {
		return true
	}
	for _, n := range names {
		if ae.Name == n {
			return true
		}
	}
	return false
}

// client calls one PDS, as one account once logged in. Access tokens are refreshed when they expire.
type client struct {
	base    string
	http    *http.Client
	access  string
	refresh string
}

// body is a request body that can be produced again (a retry after refreshing the session).
type body struct {
	contentType string
	length      int64 // -1: unknown
	open        func() (io.ReadCloser, error)
}

func jsonBody(v any) (*body, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &body{contentType: "application/json", length: int64(len(raw)), open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}}, nil
}

// send makes one request. out, if not nil, receives the JSON answer; with raw, the caller gets the open
// response body instead (and must close it).
func (c *client) send(ctx context.Context, method, nsid string, params url.Values, in *body, auth bool) (*http.Response, error) {
	u := c.base + "/xrpc/" + nsid
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	var rd io.ReadCloser
	if in != nil {
		var err error
		if rd, err = in.open(); err != nil {
			return nil, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		if rd != nil {
			rd.Close()
		}
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", in.contentType)
		if in.length >= 0 {
			req.ContentLength = in.length
		}
	}
	if auth && c.access != "" {
		req.Header.Set("Authorization", "Bearer "+c.access)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", nsid, err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	ae := &APIError{Method: nsid, Status: resp.StatusCode}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(raw, ae) != nil || ae.Name == "" {
		ae.Name = http.StatusText(resp.StatusCode)
		ae.Message = strings.TrimSpace(string(raw))
	}
	return nil, ae
}

// do sends a request, refreshing the session once if the access token expired.
func (c *client) do(ctx context.Context, method, nsid string, params url.Values, in *body, auth bool) (*http.Response, error) {
	resp, err := c.send(ctx, method, nsid, params, in, auth)
	if auth && c.refresh != "" && isAPIError(err, "ExpiredToken") {
		if rerr := c.refreshSession(ctx); rerr != nil {
			return nil, fmt.Errorf("%w (refreshing the session: %v)", err, rerr)
		}
		resp, err = c.send(ctx, method, nsid, params, in, auth)
	}
	return resp, err
}

func decode(resp *http.Response, out any) error {
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// query calls a GET method and decodes its JSON answer into out (nil: ignored).
func (c *client) query(ctx context.Context, nsid string, params url.Values, out any) error {
	resp, err := c.do(ctx, http.MethodGet, nsid, params, nil, true)
	if err != nil {
		return err
	}
	return decode(resp, out)
}

// procedure calls a POST method with a JSON input (nil: none).
func (c *client) procedure(ctx context.Context, nsid string, in, out any) error {
	var b *body
	if in != nil {
		var err error
		if b, err = jsonBody(in); err != nil {
			return err
		}
	}
	resp, err := c.do(ctx, http.MethodPost, nsid, nil, b, true)
	if err != nil {
		return err
	}
	return decode(resp, out)
}

// session is what createSession and createAccount answer.
type session struct {
	DID        string `json:"did"`
	Handle     string `json:"handle"`
	Email      string `json:"email"`
	AccessJwt  string `json:"accessJwt"`
	RefreshJwt string `json:"refreshJwt"`
	Active     *bool  `json:"active"`
	Status     string `json:"status"`
}

func (s *session) active() bool { return s.Active == nil || *s.Active }

func (c *client) login(ctx context.Context, identifier, password, authFactor string) (*session, error) {
	in := map[string]any{"identifier": identifier, "password": password}
	if authFactor != "" {
		in["authFactorToken"] = authFactor
	}
	b, err := jsonBody(in)
	if err != nil {
		return nil, err
	}
	resp, err := c.send(ctx, http.MethodPost, "com.atproto.server.createSession", nil, b, false)
	if err != nil {
		return nil, err
	}
	var s session
	if err := decode(resp, &s); err != nil {
		return nil, err
	}
	c.access, c.refresh = s.AccessJwt, s.RefreshJwt
	return &s, nil
}

func (c *client) refreshSession(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/xrpc/com.atproto.server.refreshSession", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.refresh)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("refreshSession: HTTP %d", resp.StatusCode)
	}
	var s session
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return err
	}
	c.access, c.refresh = s.AccessJwt, s.RefreshJwt
	return nil
}

// accountStatus is com.atproto.server.checkAccountStatus.
type accountStatus struct {
	Activated      bool   `json:"activated"`
	ValidDid       bool   `json:"validDid"`
	RepoCommit     string `json:"repoCommit"`
	RepoRev        string `json:"repoRev"`
	RepoBlocks     int64  `json:"repoBlocks"`
	IndexedRecords int64  `json:"indexedRecords"`
	ExpectedBlobs  int64  `json:"expectedBlobs"`
	ImportedBlobs  int64  `json:"importedBlobs"`
}

func (c *client) status(ctx context.Context) (*accountStatus, error) {
	var st accountStatus
	if err := c.query(ctx, "com.atproto.server.checkAccountStatus", nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}
