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
	"strconv"
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

// client is a minimal XRPC client for the methods the load uses. The measured calls (getRecord, createRecord,
// listRecords, getRepo) go through lean, one connection per concurrent caller (lean.go); the set-up calls through
// net/http (call).
type client struct {
	base string
	http *http.Client
	lean *leanPool
}

func newClient(base string, conns int) *client {
	tr := &http.Transport{
		DialContext:         loopbackDialer(),
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns * 2,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true, // measure the server, not gzip on both ends
	}
	return &client{base: strings.TrimRight(base, "/"), http: &http.Client{Transport: tr, Timeout: 60 * time.Second},
		lean: newLeanPool(base)}
}

// closeIdle closes the connections not in use.
func (c *client) closeIdle() {
	c.http.CloseIdleConnections()
	c.lean.closeIdle()
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
}

// call sends one XRPC request through net/http (set-up calls; the measured ones are in lean.go). in (POST only)
// is JSON-encoded; out, if non-nil, receives the JSON answer.
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
		return 0, newXRPCError(resp.StatusCode, raw)
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

// createdAtLayout is the posts' createdAt: a fresh timestamp with milliseconds, in UTC.
const createdAtLayout = "2006-01-02T15:04:05.000Z"

func post(text string) map[string]any {
	return map[string]any{
		"$type":     benchCollection,
		"text":      text,
		"createdAt": time.Now().UTC().Format(createdAtLayout),
	}
}

type writeResult struct {
	URI string `json:"uri"`
	CID string `json:"cid"`
}

// createRecord writes a post with this text and a fresh createdAt. The body is the JSON that json.Marshal writes
// for {"repo", "collection", "record": post(text)}, appended by hand into a reused buffer.
func (c *client) createRecord(ctx context.Context, a *account, text string) (writeResult, error) {
	lc := c.lean.get()
	defer c.lean.put(lc)
	b := append(lc.post[:0], `{"collection":`...)
	b = appendJSONString(b, benchCollection)
	b = append(b, `,"record":{"$type":`...)
	b = appendJSONString(b, benchCollection)
	b = append(b, `,"createdAt":"`...)
	b = time.Now().UTC().AppendFormat(b, createdAtLayout)
	b = append(b, `","text":`...)
	b = appendJSONString(b, text)
	b = append(b, `},"repo":`...)
	b = appendJSONString(b, a.DID)
	lc.post = append(b, '}')
	lc.begin(http.MethodPost, "com.atproto.repo.createRecord")
	lc.end(a.AccessJwt, lc.post)
	var out writeResult
	if _, err := lc.roundTrip(ctx, nil, true); err != nil {
		return out, err
	}
	if err := json.Unmarshal(lc.resp, &out); err != nil {
		return out, fmt.Errorf("createRecord: %w", err)
	}
	return out, nil
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

// getRecord reads one post; the answer is read in full and discarded.
func (c *client) getRecord(ctx context.Context, did, rkey string) error {
	lc := c.lean.get()
	defer c.lean.put(lc)
	// The parameters in url.Values.Encode's order (sorted by name), as net/http sent them.
	lc.begin(http.MethodGet, "com.atproto.repo.getRecord")
	lc.query('?', "collection", benchCollection)
	lc.query('&', "repo", did)
	lc.query('&', "rkey", rkey)
	lc.end("", nil)
	_, err := lc.roundTrip(ctx, nil, false)
	return err
}

// listRecords reads one page and returns the next cursor and the number of records.
func (c *client) listRecords(ctx context.Context, did string, limit int, cursor string) (string, int, error) {
	lc := c.lean.get()
	defer c.lean.put(lc)
	lc.begin(http.MethodGet, "com.atproto.repo.listRecords")
	lc.query('?', "collection", benchCollection)
	if cursor != "" {
		lc.query('&', "cursor", cursor)
	}
	lc.query('&', "limit", strconv.Itoa(limit))
	lc.query('&', "repo", did)
	lc.end("", nil)
	if _, err := lc.roundTrip(ctx, nil, true); err != nil {
		return "", 0, err
	}
	var out struct {
		Cursor  string     `json:"cursor"`
		Records []struct{} `json:"records"`
	}
	if err := json.Unmarshal(lc.resp, &out); err != nil {
		return "", 0, fmt.Errorf("listRecords: %w", err)
	}
	return out.Cursor, len(out.Records), nil
}

// getRepo downloads the account's whole repository into sink and returns its size.
func (c *client) getRepo(ctx context.Context, did string, sink io.Writer) (int64, error) {
	lc := c.lean.get()
	defer c.lean.put(lc)
	lc.begin(http.MethodGet, "com.atproto.sync.getRepo")
	lc.query('?', "did", did)
	lc.end("", nil)
	return lc.roundTrip(ctx, sink, false)
}
