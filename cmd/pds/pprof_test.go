package main

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

func TestPprofOnlyOnLoopback(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, bad := range []string{"0.0.0.0:0", "10.0.0.1:6060", ":6060", "example.com:6060", "nonsense"} {
		if _, _, err := startPprof(bad, log); err == nil {
			t.Errorf("PDS_PPROF_ADDR=%q accepted", bad)
		}
	}
	if addr, stop, err := startPprof("", log); err != nil || addr != "" {
		t.Fatalf("unset: %q %v", addr, err)
	} else {
		stop()
	}
	addr, stop, err := startPprof("127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://" + addr + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "pds.test") {
		t.Fatalf("cmdline: %d %q", resp.StatusCode, body)
	}
}
