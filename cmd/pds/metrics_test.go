package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServeMetricsAndJSONLogs: `pds serve` with PDS_METRICS_ADDRESS serves /metrics there (not on the public
// port), and with PDS_LOG_FORMAT=json PDS_LOG_LEVEL=debug logs JSON lines in which a request's line carries the
// X-Request-Id it answered with.
func TestServeMetricsAndJSONLogs(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	srv := startBinary(t, map[string]string{
		"PDS_PORT": fmt.Sprint(port), "PDS_DATA_DIRECTORY": t.TempDir(), "PDS_EMBEDDED_PLC_ADDR": "127.0.0.1:0",
		"PDS_METRICS_ADDRESS": metricsAddr, "PDS_LOG_FORMAT": "json", "PDS_LOG_LEVEL": "debug",
	})

	resp, err := http.Get(srv.URL + "/xrpc/com.atproto.server.describeServer")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id := resp.Header.Get("X-Request-Id")
	if len(id) != 32 {
		t.Fatalf("X-Request-Id %q", id)
	}

	resp, err = http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `pds_xrpc_requests_total{nsid="com.atproto.server.describeServer",status="200"} 1`) {
		t.Fatalf("GET /metrics: %d\n%.2000s", resp.StatusCode, body)
	}
	resp, err = http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("public port GET /metrics: %d", resp.StatusCode)
	}

	deadline := time.Now().Add(10 * time.Second)
	for {
		var sawListening, sawRequest bool
		for _, line := range strings.Split(strings.TrimSpace(srv.Log()), "\n") {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("not a JSON log line: %q", line)
			}
			if strings.HasPrefix(fmt.Sprint(rec["msg"]), "metrics listening") && rec["addr"] == metricsAddr {
				sawListening = true
			}
			if rec["request_id"] == id && rec["msg"] == "request" && rec["status"] == float64(200) {
				sawRequest = true
			}
		}
		if sawListening && sawRequest {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("listening line %v, request line %v in:\n%s", sawListening, sawRequest, srv.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
