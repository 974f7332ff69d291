package sequencer

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/internal/sqlitedb"
)

// TestExportSinceAndRebuild: a copy of the log, then two segments exported from the live log, rebuild the log
// as it was at the second export: every event, the head, the dirty marks.
func TestExportSinceAndRebuild(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "seq.sqlite")
	s := open(t, path, Options{})
	for range 3 {
		wait(t, identity(s, "did:plc:a"))
	}
	if err := s.MarkDirty(ctx, "did:plc:w"); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "base.sqlite")
	if err := sqlitedb.Snapshot(ctx, path, base); err != nil {
		t.Fatal(err)
	}
	wait(t, identity(s, "did:plc:b"))
	wait(t, identity(s, "did:plc:c"))
	seg1, err := ExportSince(ctx, path, filepath.Join(dir, "seg1.sqlite"), 3)
	if err != nil {
		t.Fatal(err)
	}
	if seg1.Head != 5 || seg1.Events != 2 || !seg1.Complete || !slices.Equal(seg1.DIDs, []syntax.DID{"did:plc:b", "did:plc:c"}) || !slices.Equal(seg1.Dirty, []syntax.DID{"did:plc:w"}) {
		t.Fatalf("segment 1: %+v", seg1)
	}
	wait(t, identity(s, "did:plc:d"))
	seg2, err := ExportSince(ctx, path, filepath.Join(dir, "seg2.sqlite"), seg1.Head)
	if err != nil {
		t.Fatal(err)
	}
	if seg2.Head != 6 || seg2.Events != 1 {
		t.Fatalf("segment 2: %+v", seg2)
	}
	// Every event pruned: an export after seq 3 is incomplete (the events since are gone).
	if _, err := s.Prune(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if seg, err := ExportSince(ctx, path, filepath.Join(dir, "seg3.sqlite"), 3); err != nil || seg.Complete {
		t.Fatalf("export over pruned events: %+v %v", seg, err)
	}
	s.Close()

	rebuilt := filepath.Join(dir, "rebuilt.sqlite")
	if err := Rebuild(ctx, rebuilt, base, []string{filepath.Join(dir, "seg1.sqlite"), filepath.Join(dir, "seg2.sqlite")}); err != nil {
		t.Fatal(err)
	}
	r := open(t, rebuilt, Options{})
	evs := allEvents(t, r)
	if r.Head() != 6 || len(evs) != 6 {
		t.Fatalf("rebuilt: head %d, %d events", r.Head(), len(evs))
	}
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
	if d := r.DirtyDIDs(); !slices.Equal(d, []syntax.DID{"did:plc:w"}) {
		t.Fatalf("dirty after rebuild: %v", d)
	}
}
