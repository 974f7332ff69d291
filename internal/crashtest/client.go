package crashtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// xrpcClient is a minimal XRPC client that tells transport failures (the outcome of a write is unknown: the
// server may have died before or after committing) from HTTP answers.
type xrpcClient struct {
	base  string
	token string
	hc    *http.Client
}

func newClient(base, token string) *xrpcClient {
	return &xrpcClient{base: base, token: token, hc: &http.Client{
		Timeout:   15 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second},
	}}
}

// answer is an HTTP answer.
type answer struct {
	Status int
	Body   []byte
}

func (a *answer) JSON() map[string]any {
	var m map[string]any
	json.Unmarshal(a.Body, &m)
	return m
}

func (a *answer) String() string {
	b := a.Body
	if len(b) > 300 {
		b = b[:300]
	}
	return fmt.Sprintf("%d %s", a.Status, bytes.TrimSpace(b))
}

// commitOf returns the commit {cid, rev} of a write answer ("" when the write changed nothing).
func (a *answer) commitOf() (cid, rev string) {
	c, _ := a.JSON()["commit"].(map[string]any)
	cid, _ = c["cid"].(string)
	rev, _ = c["rev"].(string)
	return cid, rev
}

// call sends a query (body nil, GET) or procedure (POST). err is non-nil only when no HTTP answer arrived.
func (c *xrpcClient) call(ctx context.Context, nsid string, params url.Values, body any) (*answer, error) {
	u := c.base + "/xrpc/" + nsid
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	method := http.MethodGet
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		method, rd = http.MethodPost, bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err // the answer was cut off: as unknown as no answer
	}
	return &answer{Status: resp.StatusCode, Body: b}, nil
}
