package requestid_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/pdsgo/pds/pds/requestid"
)

func TestNew(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := requestid.New()
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" || !requestid.Valid(id) {
			t.Fatalf("bad ID %q", id)
		}
		if seen[id] {
			t.Fatalf("ID %q twice", id)
		}
		seen[id] = true
	}
}

func TestValid(t *testing.T) {
	for _, ok := range []string{"a", "0f6c2b1e-6c2b-4b6e-9f1e-2b1e6c2b4b6e", "edge:01.b_c", strings.Repeat("z", requestid.MaxLen)} {
		if !requestid.Valid(ok) {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", " ", "a b", "a\nb", "a=b", "ü", `"q"`, strings.Repeat("z", requestid.MaxLen+1)} {
		if requestid.Valid(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestHandler: lines logged with a request's context carry its ID, others do not; wrapping twice adds it once.
func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(requestid.Handler(requestid.Handler(slog.NewJSONHandler(&buf, nil)))).With("component", "x")
	ctx := requestid.With(context.Background(), "abc")
	log.InfoContext(ctx, "with")
	log.Info("without")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines", len(lines))
	}
	var with, without map[string]any
	json.Unmarshal([]byte(lines[0]), &with)
	json.Unmarshal([]byte(lines[1]), &without)
	if with["request_id"] != "abc" || with["component"] != "x" || strings.Count(lines[0], "request_id") != 1 {
		t.Errorf("with: %s", lines[0])
	}
	if _, ok := without["request_id"]; ok {
		t.Errorf("without: %s", lines[1])
	}
}
