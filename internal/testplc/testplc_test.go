package testplc

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestStartHealth(t *testing.T) {
	url := Start(t)
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("unexpected url %q", url)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get(url + "/_health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /_health: %d %s", resp.StatusCode, body)
	}
	var h struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(body, &h); err != nil || h.Version == "" {
		t.Fatalf("GET /_health: bad body %s (%v)", body, err)
	}

	// An unknown DID is a 404 with a JSON message.
	resp2, err := hc.Get(url + "/did:plc:aaaaaaaaaaaaaaaaaaaaaaaa")
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusNotFound {
		t.Fatalf("GET unknown DID: status %d, want 404", resp2.StatusCode)
	}
}

func TestStartProcessStop(t *testing.T) {
	url, stop, err := StartProcess()
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(url + "/_health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	stop()
	stop() // idempotent
	if resp, err := hc.Get(url + "/_health"); err == nil {
		resp.Body.Close()
		t.Fatalf("directory still answering after stop")
	}
}

func TestEnsureInstalledIdempotent(t *testing.T) {
	for i := 0; i < 2; i++ {
		if err := EnsureInstalled(); err != nil {
			t.Fatal(err)
		}
	}
}
