package metrics_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/pdsgo/pds/pds/metrics"
)

// TestRequestLabelsBounded: methods and paths outside the sets given to Routes collapse into one label value
// each, so clients cannot grow the series.
func TestRequestLabelsBounded(t *testing.T) {
	m := metrics.New("test")
	m.Routes([]string{"com.atproto.repo.getRecord", "com.atproto.sync.subscribeRepos"}, []string{"com.atproto.sync.subscribeRepos"}, []string{"/oauth/token"})
	m.Request("com.atproto.repo.getRecord", "/xrpc/:nsid", 200, time.Millisecond)
	m.Request("com.atproto.repo.getRecord", "/xrpc/:nsid", 200, time.Millisecond)
	m.Request("com.atproto.repo.getRecord", "/xrpc/:nsid", 404, time.Millisecond)
	for i := range 100 {
		m.Request("com.example.random"+strings.Repeat("x", i), "/xrpc/:nsid", 501, time.Millisecond)
		m.Request("", "/no/such/path/"+strings.Repeat("y", i), 404, time.Millisecond)
	}
	m.Request("com.atproto.sync.subscribeRepos", "/xrpc/:nsid", 200, time.Hour)
	m.Request("", "/oauth/token", 200, time.Millisecond)

	want := `
# HELP pds_xrpc_requests_total XRPC requests by method (NSID; "unknown" for methods neither served here nor in the lexicons) and HTTP status.
# TYPE pds_xrpc_requests_total counter
pds_xrpc_requests_total{nsid="com.atproto.repo.getRecord",status="200"} 2
pds_xrpc_requests_total{nsid="com.atproto.repo.getRecord",status="404"} 1
pds_xrpc_requests_total{nsid="com.atproto.sync.subscribeRepos",status="200"} 1
pds_xrpc_requests_total{nsid="unknown",status="501"} 100
# HELP pds_http_requests_total Requests outside /xrpc/ (OAuth, account pages, well-known, health) by route pattern and HTTP status.
# TYPE pds_http_requests_total counter
pds_http_requests_total{route="/oauth/token",status="200"} 1
pds_http_requests_total{route="unmatched",status="404"} 100
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "pds_xrpc_requests_total", "pds_http_requests_total"); err != nil {
		t.Fatal(err)
	}
	// subscribeRepos is counted, not timed.
	if n := testutil.CollectAndCount(m.Registry(), "pds_xrpc_request_duration_seconds"); n != 2 {
		t.Fatalf("%d duration series, want 2 (getRecord, unknown)", n)
	}
}

// TestRequestNoAllocs: recording a request on the hot path allocates nothing once its series exist.
func TestRequestNoAllocs(t *testing.T) {
	m := metrics.New("test")
	m.Routes([]string{"com.atproto.repo.getRecord"}, nil, nil)
	m.Request("com.atproto.repo.getRecord", "", 200, time.Millisecond)
	if n := testing.AllocsPerRun(1000, func() {
		m.Request("com.atproto.repo.getRecord", "", 200, time.Millisecond)
		m.Commit(time.Millisecond, nil)
		m.Batch(3)
	}); n != 0 {
		t.Fatalf("%v allocations per request", n)
	}
}

func BenchmarkRequest(b *testing.B) {
	m := metrics.New("test")
	m.Routes([]string{"com.atproto.repo.getRecord"}, nil, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Request("com.atproto.repo.getRecord", "", 200, time.Millisecond)
		}
	})
}

// TestBackupHook: the backup metrics exist only once Backup is called; a failed round does not move the last
// success; lag is measured from the last successful round's start.
func TestBackupHook(t *testing.T) {
	m := metrics.New("test")
	if n := testutil.CollectAndCount(m.Registry(), "pds_backup_lag_seconds"); n != 0 {
		t.Fatalf("backup metrics without a backup: %d", n)
	}
	h := m.Backup()
	start := time.Now().Add(-90 * time.Second)
	h.RoundDone(start, 1234, 2*time.Second, nil)
	h.RoundDone(time.Now(), 0, time.Second, errors.New("bucket unreachable"))
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, s := range f.Metric {
			switch {
			case s.Gauge != nil:
				got[f.GetName()] = s.Gauge.GetValue()
			case s.Counter != nil:
				got[f.GetName()+labels(s.Label)] = s.Counter.GetValue()
			}
		}
	}
	if got["pds_backup_last_success_timestamp_seconds"] != float64(start.UnixNano())/1e9 {
		t.Errorf("last success %v, want %v", got["pds_backup_last_success_timestamp_seconds"], start.Unix())
	}
	if lag := got["pds_backup_lag_seconds"]; lag < 90 || lag > 100 {
		t.Errorf("lag %v, want ~90 s", lag)
	}
	if got["pds_backup_uploaded_bytes_total{}"] != 1234 || got["pds_backup_rounds_total{result=ok}"] != 1 || got["pds_backup_rounds_total{result=error}"] != 1 {
		t.Errorf("counters: %v", got)
	}
}

func labels(ls []*dto.LabelPair) string {
	var b strings.Builder
	b.WriteString("{")
	for i, l := range ls {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(l.GetName() + "=" + l.GetValue())
	}
	b.WriteString("}")
	return b.String()
}

// TestListen: /metrics on its own listener, nothing else there.
func TestListen(t *testing.T) {
	m := metrics.New("test")
	srv, err := m.Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	resp, err := http.Get("http://" + srv.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "pds_build_info{") {
		t.Fatalf("GET /metrics: %d %.200s", resp.StatusCode, body)
	}
	resp, err = http.Get("http://" + srv.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("GET /: %d", resp.StatusCode)
	}
	if _, err := m.Listen(srv.Addr(), nil); err == nil || !strings.Contains(err.Error(), "PDS_METRICS_ADDRESS") {
		t.Fatalf("a second listener on the same address: %v", err)
	}
}
