package pds_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/pdsgo/pds/pds"
	"github.com/pdsgo/pds/pds/requestid"
)

func TestObservabilityConfig(t *testing.T) {
	load := func(env map[string]string) (*pds.Config, error) {
		env["PDS_DATA_DIRECTORY"] = t.TempDir()
		return pds.InspectConfig(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	}
	cfg, err := load(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.Observability; o.LogFormat != "text" || o.LogLevel != slog.LevelInfo || o.MetricsAddress != "" {
		t.Fatalf("defaults: %+v", o)
	}
	cfg, err = load(map[string]string{"PDS_LOG_FORMAT": "JSON", "PDS_LOG_LEVEL": "debug", "PDS_METRICS_ADDRESS": "127.0.0.1:9464"})
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.Observability; o.LogFormat != "json" || o.LogLevel != slog.LevelDebug || o.MetricsAddress != "127.0.0.1:9464" {
		t.Fatalf("set: %+v", o)
	}
	for k, v := range map[string]string{"PDS_LOG_FORMAT": "logfmt", "PDS_LOG_LEVEL": "verbose", "PDS_METRICS_ADDRESS": "9464"} {
		if _, err := load(map[string]string{k: v}); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: %v", k, v, err)
		}
	}

	// The logger: JSON at the level, with request IDs.
	var buf bytes.Buffer
	log := cfg.Observability.NewLogger(&buf)
	log.DebugContext(requestid.With(context.Background(), "r1"), "hello")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || rec["msg"] != "hello" || rec["request_id"] != "r1" {
		t.Fatalf("log line %q (%v)", buf.String(), err)
	}
	cfg, _ = load(map[string]string{"PDS_LOG_LEVEL": "warn"})
	buf.Reset()
	log = cfg.Observability.NewLogger(&buf)
	log.Info("hidden")
	log.Warn("shown")
	if s := buf.String(); strings.Contains(s, "hidden") || !strings.HasPrefix(s, "time=") || !strings.Contains(s, "shown") {
		t.Fatalf("text logger at warn: %q", s)
	}
}
