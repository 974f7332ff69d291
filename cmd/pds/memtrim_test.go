package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"
)

func TestMemTrimmerDecision(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tr := &memTrimmer{quiet: 2 * time.Second, minExcess: 4 << 20, cycles: 10, lastCycle: t0, base: 8 << 20}
	steps := []struct {
		at     time.Duration
		cycles uint64
		mapped uint64
		want   bool
		why    string
	}{
		{1 * time.Second, 10, 64 << 20, false, "quiet for 1 s only"},
		{2 * time.Second, 11, 64 << 20, false, "a GC cycle ran: busy"},
		{3 * time.Second, 11, 64 << 20, false, "quiet for 1 s since that cycle"},
		{4 * time.Second, 11, 10 << 20, false, "quiet, but little beyond the base"},
		{5 * time.Second, 11, 64 << 20, true, "quiet for 3 s with 56 MiB beyond the base"},
	}
	for _, s := range steps {
		if got := tr.observe(trimSample{cycles: s.cycles, mapped: s.mapped}, t0.Add(s.at)); got != s.want {
			t.Fatalf("at %v (%s): trim = %v, want %v", s.at, s.why, got, s.want)
		}
	}
	// The trim's own GC cycle is not activity, and right after it there is nothing to trim.
	// The trim left 20 MiB live: the new base.
	tr.trimmed(trimSample{cycles: 12, mapped: 20 << 20, live: 20 << 20}, t0.Add(5*time.Second))
	if tr.observe(trimSample{cycles: 12, mapped: 64 << 20}, t0.Add(6*time.Second)) {
		t.Fatal("trimmed again 1 s after a trim")
	}
	if tr.observe(trimSample{cycles: 12, mapped: 22 << 20}, t0.Add(8*time.Second)) {
		t.Fatal("trimmed with 2 MiB over the new base")
	}
	if !tr.observe(trimSample{cycles: 12, mapped: 64 << 20}, t0.Add(9*time.Second)) {
		t.Fatal("no trim, quiet for 4 s with 44 MiB over the new base")
	}
}

var trimSink [][]byte

// TestStartMemoryTrim: a burst's garbage is returned to the OS once the process is quiet, by one trim.
func TestStartMemoryTrim(t *testing.T) {
	ms := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	read := func() (free, released uint64) {
		metrics.Read(ms)
		return ms[0].Value.Uint64(), ms[1].Value.Uint64()
	}
	runtime.GC()
	var trims atomic.Int32
	stop := startMemoryTrim(20*time.Millisecond, 100*time.Millisecond, 4<<20, func() {
		debug.FreeOSMemory()
		trims.Add(1)
	})
	defer stop()
	// A burst: 64 MiB live through a GC, then dropped (garbage only the next GC would find).
	for range 64 {
		trimSink = append(trimSink, make([]byte, 1<<20))
	}
	runtime.GC()
	trimSink = nil
	_, releasedBefore := read()
	deadline := time.Now().Add(10 * time.Second)
	for trims.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no trim within 10 s of a quiet process holding a 64 MiB burst")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if free, released := read(); released < releasedBefore+32<<20 || free > 4<<20 {
		t.Fatalf("after the trim: released %d → %d bytes, %d still free and mapped", releasedBefore, released, free)
	}
	time.Sleep(500 * time.Millisecond) // 25 more intervals, quiet, nothing left to return
	if n := trims.Load(); n != 1 {
		t.Fatalf("%d trims, want 1: trimmed again with nothing to return", n)
	}
}
