package pds_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pdsgo/pds/internal/testpds"
)

// End-to-end benchmarks over real HTTP and real SQLite (the server in this process, as in the tests). For the
// side-by-side figures against the reference PDS see cmd/pdsbench and docs/performance.md.

// benchOptions is the benchmarks' server: PDS_BENCH_METRICS=1 in the benchmark's environment turns the
// metrics on (PDS_METRICS_ADDRESS on loopback), to measure what they cost (docs/performance.md).
func benchOptions() testpds.Options {
	if os.Getenv("PDS_BENCH_METRICS") == "1" {
		return testpds.Options{Env: map[string]string{"PDS_METRICS_ADDRESS": "127.0.0.1:0"}}
	}
	return testpds.Options{}
}

func benchHTTPClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32, DisableCompression: true}}
}

// benchCall sends one XRPC request and fails the benchmark (safely from any goroutine) on a non-200 answer.
func benchCall(b *testing.B, hc *http.Client, method, u, token string, body []byte) bool {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		b.Error(err)
		return false
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		b.Error(err)
		return false
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		b.Errorf("%s %s: %d %s", method, u, resp.StatusCode, out)
		return false
	}
	return true
}

func createRecordBody(did string, i int) []byte {
	body, _ := json.Marshal(map[string]any{
		"repo": did, "collection": "app.bsky.feed.post",
		"record": map[string]any{"$type": "app.bsky.feed.post", "text": fmt.Sprintf("bench post %d", i), "createdAt": "2026-11-26T00:00:00.000Z"},
	})
	return body
}

// runClients runs b.N calls of fn spread over n goroutines ("clients"), each taking the next op index.
func runClients(b *testing.B, n int, fn func(client, i int) bool) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N || !fn(c, i) {
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

// BenchmarkCreateRecord: createRecord from 1 client; 8 clients on 8 accounts; 8 clients on one account.
func BenchmarkCreateRecord(b *testing.B) {
	p := testpds.Start(b, benchOptions())
	accts := make([]*testpds.Account, 8)
	for i := range accts {
		accts[i] = p.CreateAccount(fmt.Sprintf("bench%d", i))
	}
	hc := benchHTTPClient()
	u := p.URL + "/xrpc/com.atproto.repo.createRecord"
	create := func(b *testing.B, a *testpds.Account, i int) bool {
		return benchCall(b, hc, http.MethodPost, u, a.AccessJwt, createRecordBody(a.DID, i))
	}
	b.Run("clients=1", func(b *testing.B) {
		runClients(b, 1, func(_, i int) bool { return create(b, accts[0], i) })
	})
	b.Run("clients=8/accounts=8", func(b *testing.B) {
		runClients(b, 8, func(c, i int) bool { return create(b, accts[c], i) })
	})
	b.Run("clients=8/accounts=1", func(b *testing.B) {
		runClients(b, 8, func(_, i int) bool { return create(b, accts[1], i) })
	})
}

// BenchmarkGetRecord: getRecord of a 500-record repo from 1 and 8 clients.
func BenchmarkGetRecord(b *testing.B) {
	p := testpds.Start(b, benchOptions())
	a := p.CreateAccount("benchread")
	var rkeys []string
	for range 5 {
		writes := make([]map[string]any, 100)
		for i := range writes {
			writes[i] = map[string]any{"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post",
				"value": map[string]any{"$type": "app.bsky.feed.post", "text": "read bench", "createdAt": "2026-11-26T00:00:00.000Z"}}
		}
		resp := p.Procedure("com.atproto.repo.applyWrites", map[string]any{"repo": a.DID, "writes": writes}, a.AccessJwt)
		if resp.Status != http.StatusOK {
			b.Fatalf("applyWrites: %s", resp)
		}
		var out struct{ Results []struct{ URI string } }
		if err := json.Unmarshal(resp.Body, &out); err != nil {
			b.Fatal(err)
		}
		for _, r := range out.Results {
			rkeys = append(rkeys, r.URI[len(r.URI)-13:])
		}
	}
	hc := benchHTTPClient()
	get := func(b *testing.B, i int) bool {
		q := url.Values{"repo": {a.DID}, "collection": {"app.bsky.feed.post"}, "rkey": {rkeys[(i*7919)%len(rkeys)]}}
		return benchCall(b, hc, http.MethodGet, p.URL+"/xrpc/com.atproto.repo.getRecord?"+q.Encode(), "", nil)
	}
	for _, n := range []int{1, 8} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			runClients(b, n, func(_, i int) bool { return get(b, i) })
		})
	}
}

// BenchmarkListRecords: listRecords pages of 100 from a 500-record repo, 1 and 8 clients.
func BenchmarkListRecords(b *testing.B) {
	p := testpds.Start(b, benchOptions())
	a := p.CreateAccount("benchlist")
	for range 5 {
		writes := make([]map[string]any, 100)
		for i := range writes {
			writes[i] = map[string]any{"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post",
				"value": map[string]any{"$type": "app.bsky.feed.post", "text": fmt.Sprintf("list bench %d", i), "langs": []string{"en"},
					"createdAt": "2026-11-26T00:00:00.000Z"}}
		}
		if resp := p.Procedure("com.atproto.repo.applyWrites", map[string]any{"repo": a.DID, "writes": writes}, a.AccessJwt); resp.Status != http.StatusOK {
			b.Fatalf("applyWrites: %s", resp)
		}
	}
	hc := benchHTTPClient()
	list := func(b *testing.B, i int) bool {
		q := url.Values{"repo": {a.DID}, "collection": {"app.bsky.feed.post"}, "limit": {"100"}}
		if i%5 != 0 {
			q.Set("reverse", "true")
		}
		return benchCall(b, hc, http.MethodGet, p.URL+"/xrpc/com.atproto.repo.listRecords?"+q.Encode(), "", nil)
	}
	for _, n := range []int{1, 8} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			runClients(b, n, func(_, i int) bool { return list(b, i) })
		})
	}
}
