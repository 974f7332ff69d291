package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// errNotLoopback: the tool only ever loads servers on this machine.
var errNotLoopback = errors.New("target must be a loopback address (127.0.0.0/8, ::1 or localhost)")

// checkLoopback accepts http(s) URLs whose host is localhost or a loopback IP literal.
func checkLoopback(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("target %q: scheme must be http or https", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return u, nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("%w: %q", errNotLoopback, host)
	}
	return u, nil
}

// loopbackDialer refuses connections to anything but loopback, whatever a name resolves to.
func loopbackDialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
			c.Close()
			return nil, fmt.Errorf("%w: connected to %s", errNotLoopback, c.RemoteAddr())
		}
		return c, nil
	}
}

// client is a minimal XRPC client for the methods the load uses.
type client struct {
	base string
	http *http.Client
}

func newClient(base string, conns int) *client {
	tr := &http.Transport{
		DialContext:         loopbackDialer(),
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns * 2,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true, // measure the server, not gzip on both ends
	}
	return &client{base: strings.TrimRight(base, "/"), http: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// xrpcError is a non-2xx answer.
type xrpcError struct {
	Status  int
	Name    string `json:"error"`
	Message string `json:"message"`
}

func (e *xrpcError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Name, e.Message) }

type reqOpts struct {
	token     string // bearer token
	adminPass string // HTTP Basic admin:<pass>
	sink      io.Writer
}

// call sends one XRPC request. in (POST only) is JSON-encoded; out, if non-nil, receives the JSON answer.
// With o.sink set the body is copied there instead and the byte count returned.
func (c *client) call(ctx context.Context, method, nsid string, params url.Values, in, out any, o reqOpts) (int64, error) {
	u := c.base + "/xrpc/" + nsid
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return 0, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if o.token != "" {
		req.Header.Set("Authorization", "Bearer "+o.token)
	}
	if o.adminPass != "" {
		req.SetBasicAuth("admin", o.adminPass)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		e := &xrpcError{Status: resp.StatusCode}
		if json.Unmarshal(raw, e) != nil || e.Name == "" {
			e.Message = strings.TrimSpace(string(raw))
		}
		return 0, e
	}
	if o.sink != nil {
		return io.Copy(o.sink, resp.Body)
	}
	if out == nil {
		n, err := io.Copy(io.Discard, resp.Body)
		return n, err
	}
	return 0, json.NewDecoder(resp.Body).Decode(out)
}

type serverDescription struct {
	DID                  string   `json:"did"`
	AvailableUserDomains []string `json:"availableUserDomains"`
	InviteCodeRequired   bool     `json:"inviteCodeRequired"`
}

func (c *client) describeServer(ctx context.Context) (*serverDescription, error) {
	var d serverDescription
	_, err := c.call(ctx, http.MethodGet, "com.atproto.server.describeServer", nil, nil, &d, reqOpts{})
	return &d, err
}

func (c *client) createInviteCode(ctx context.Context, adminPass string, uses int) (string, error) {
	var out struct {
		Code string `json:"code"`
	}
	_, err := c.call(ctx, http.MethodPost, "com.atproto.server.createInviteCode", nil,
		map[string]any{"useCount": uses}, &out, reqOpts{adminPass: adminPass})
	return out.Code, err
}

type account struct {
	DID       string `json:"did"`
	Handle    string `json:"handle"`
	AccessJwt string `json:"accessJwt"`
}

func (c *client) createAccount(ctx context.Context, handle, email, password, invite string) (*account, error) {
	in := map[string]any{"handle": handle, "email": email, "password": password}
	if invite != "" {
		in["inviteCode"] = invite
	}
	var a account
	_, err := c.call(ctx, http.MethodPost, "com.atproto.server.createAccount", nil, in, &a, reqOpts{})
	if err == nil && (a.DID == "" || a.AccessJwt == "") {
		err = errors.New("createAccount: answer without did or accessJwt")
	}
	return &a, err
}

const benchCollection = "app.bsky.feed.post"

func post(text string) map[string]any {
	return map[string]any{
		"$type":     benchCollection,
		"text":      text,
		"createdAt": time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
	}
}

type writeResult struct {
	URI string `json:"uri"`
	CID string `json:"cid"`
}

func (c *client) createRecord(ctx context.Context, a *account, rec map[string]any) (*writeResult, error) {
	var out writeResult
	_, err := c.call(ctx, http.MethodPost, "com.atproto.repo.createRecord", nil,
		map[string]any{"repo": a.DID, "collection": benchCollection, "record": rec}, &out, reqOpts{token: a.AccessJwt})
	return &out, err
}

// applyCreates writes records in one applyWrites call and returns their record keys.
func (c *client) applyCreates(ctx context.Context, a *account, recs []map[string]any) ([]string, error) {
	writes := make([]map[string]any, len(recs))
	for i, r := range recs {
		writes[i] = map[string]any{"$type": "com.atproto.repo.applyWrites#create", "collection": benchCollection, "value": r}
	}
	var out struct {
		Results []writeResult `json:"results"`
	}
	_, err := c.call(ctx, http.MethodPost, "com.atproto.repo.applyWrites", nil,
		map[string]any{"repo": a.DID, "writes": writes}, &out, reqOpts{token: a.AccessJwt})
	if err != nil {
		return nil, err
	}
	if len(out.Results) != len(recs) {
		return nil, fmt.Errorf("applyWrites: %d results for %d writes", len(out.Results), len(recs))
	}
	rkeys := make([]string, len(out.Results))
	for i, r := range out.Results {
		rkeys[i] = r.URI[strings.LastIndexByte(r.URI, '/')+1:]
	}
	return rkeys, nil
}

func (c *client) getRecord(ctx context.Context, did, rkey string) error {
	_, err := c.call(ctx, http.MethodGet, "com.atproto.repo.getRecord",
		url.Values{"repo": {did}, "collection": {benchCollection}, "rkey": {rkey}}, nil, nil, reqOpts{})
	return err
}

// listRecords reads one page and returns the next cursor.
func (c *client) listRecords(ctx context.Context, did string, limit int, cursor string) (string, int, error) {
	p := url.Values{"repo": {did}, "collection": {benchCollection}, "limit": {fmt.Sprint(limit)}}
	if cursor != "" {
		p.Set("cursor", cursor)
	}
	var out struct {
		Cursor  string            `json:"cursor"`
		Records []json.RawMessage `json:"records"`
	}
	_, err := c.call(ctx, http.MethodGet, "com.atproto.repo.listRecords", p, nil, &out, reqOpts{})
	return out.Cursor, len(out.Records), err
}

// getRepo downloads the account's whole repository and returns its size.
func (c *client) getRepo(ctx context.Context, did string) (int64, error) {
	return c.call(ctx, http.MethodGet, "com.atproto.sync.getRepo", url.Values{"did": {did}}, nil, nil, reqOpts{sink: io.Discard})
}
