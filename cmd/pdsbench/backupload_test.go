package main

import (
	"bytes"
	"log/slog"
	"testing"
	"time"
)

// parseRoundLine reads the line pds/backup.Run logs after a round, as slog's text handler (cmd/pds) writes it.
func TestParseRoundLine(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	log.Info("backup round", "round", "20261207T150405.123Z", "seq", int64(42), "accounts", 10000, "copied", 100,
		"objects", 102, "bytes", int64(5600000), "duration", 2500*time.Millisecond)
	r, ok := parseRoundLine(buf.String())
	if !ok {
		t.Fatalf("not parsed: %s", buf.String())
	}
	if r.Accounts != 10000 || r.Copied != 100 || r.Objects != 102 || r.Bytes != 5600000 || r.Seconds != 2.5 ||
		r.End.Sub(r.Start) != 2500*time.Millisecond || time.Since(r.End) > time.Minute {
		t.Fatalf("parsed %+v from %s", r, buf.String())
	}
	buf.Reset()
	log.Info("backup pruned", "rounds", 3)
	if _, ok := parseRoundLine(buf.String()); ok {
		t.Fatal("a prune line parsed as a round")
	}
}
