package blobgc_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/pdsgo/pds/pds/blobgc"
)

func TestQueue(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "blobgc.sqlite")
	q, err := blobgc.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.UnixMilli(time.Now().UnixMilli())
	if _, ok, err := q.NextDue(ctx); err != nil || ok {
		t.Fatalf("empty queue NextDue: %v %v", ok, err)
	}
	// The earliest mark wins.
	must(t, q.Mark(ctx, "did:plc:a", now.Add(time.Hour)))
	must(t, q.Mark(ctx, "did:plc:a", now.Add(time.Minute)))
	must(t, q.Mark(ctx, "did:plc:a", now.Add(2*time.Hour)))
	must(t, q.Mark(ctx, "did:plc:b", now.Add(3*time.Hour)))
	if next, ok, _ := q.NextDue(ctx); !ok || !next.Equal(now.Add(time.Minute)) {
		t.Fatalf("NextDue = %v", next)
	}
	if due, _ := q.Due(ctx, now, 10); len(due) != 0 {
		t.Fatalf("nothing is due yet: %v", due)
	}
	due, err := q.Due(ctx, now.Add(4*time.Hour), 10)
	if err != nil || len(due) != 2 || due[0].DID != "did:plc:a" {
		t.Fatalf("Due = %v %v", due, err)
	}

	// A mark made while the collector works keeps the row; a clean Done removes it.
	must(t, q.Mark(ctx, "did:plc:a", now.Add(5*time.Hour)))
	must(t, q.Done(ctx, due[0], time.Time{}, false))
	must(t, q.Done(ctx, due[1], now.Add(10*time.Hour), true))

	// Durable: reopen.
	q.Close()
	q, err = blobgc.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	due, _ = q.Due(ctx, now.Add(24*time.Hour), 10)
	if len(due) != 2 || due[0].DID != "did:plc:a" || due[1].DID != "did:plc:b" || !due[1].Due.Equal(now.Add(10*time.Hour)) {
		t.Fatalf("after a concurrent mark and a rescheduling Done: %+v", due)
	}
	must(t, q.Postpone(ctx, "did:plc:a", now.Add(20*time.Hour)))
	must(t, q.Done(ctx, due[1], time.Time{}, false))
	due, _ = q.Due(ctx, now.Add(24*time.Hour), 10)
	if len(due) != 1 || !due[0].Due.Equal(now.Add(20*time.Hour)) {
		t.Fatalf("after Postpone and Done: %+v", due)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
