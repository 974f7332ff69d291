package main

import (
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Memory limit (PDS_MEMORY_LIMIT): under GOGC alone the heap grows to twice what is live before a collection,
// and what a burst used (a thousand firehose subscribers, scrypt's 16 MB per password hash) stays resident
// until the next one. A soft limit makes the runtime collect and return memory to the OS before that.
//
// A fixed limit below the working set would make the GC run back to back (up to half the CPU), so the limit
// applied never goes below what GOGC alone would let the runtime reach: twice the live heap plus the stacks and
// globals the GC scans, and a quarter on top for the runtime's own memory. It only bites while the live heap is
// small; a server whose working set outgrows the configured value runs as with GOGC alone.

// memLimitInterval is how often the live heap is checked (only after a GC cycle ended since the last check).
const memLimitInterval = time.Second

// memSample is what the limit follows, from runtime/metrics.
type memSample struct {
	cycles               uint64 // GC cycles completed
	live, stack, globals int64  // bytes the last GC marked live, and the stacks and globals it scanned
	gogc                 int64  // GOGC percent; < 0 when off
}

var memMetricNames = []string{
	"/gc/cycles/total:gc-cycles", "/gc/heap/live:bytes", "/gc/scan/stack:bytes", "/gc/scan/globals:bytes",
	"/gc/gogc:percent",
}

func readMemSample(ms []metrics.Sample) memSample {
	metrics.Read(ms)
	u := func(i int) uint64 { return metricUint64(ms[i]) }
	return memSample{cycles: u(0), live: int64(u(1)), stack: int64(u(2)), globals: int64(u(3)), gogc: int64(u(4))}
}

// metricUint64 is a sample's value, 0 if the runtime does not have that metric.
func metricUint64(s metrics.Sample) uint64 {
	if s.Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s.Value.Uint64()
}

// memoryLimitFor is the limit to apply: the configured one, raised to GOGC's own reach (see above).
func memoryLimitFor(configured int64, s memSample) int64 {
	if s.gogc <= 0 {
		return configured // GOGC=off: the limit is the only trigger, as the operator chose
	}
	goal := s.live + (s.live+s.stack+s.globals)*s.gogc/100
	return max(configured, goal+goal/4)
}

// startMemoryLimit applies limit (bytes; 0 = none) unless GOMEMLIMIT is set (goMemLimit: its value), and
// keeps it above the working set; the returned function stops that.
func startMemoryLimit(limit int64, goMemLimit string, log *slog.Logger) (stop func()) {
	if goMemLimit != "" {
		log.Info("memory limit from GOMEMLIMIT", "GOMEMLIMIT", goMemLimit)
		return func() {}
	}
	if limit <= 0 {
		return func() {}
	}
	ms := make([]metrics.Sample, len(memMetricNames))
	for i, n := range memMetricNames {
		ms[i].Name = n
	}
	applied := memoryLimitFor(limit, readMemSample(ms))
	debug.SetMemoryLimit(applied)
	log.Info("memory limit", "bytes", limit)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(memLimitInterval)
		defer t.Stop()
		var cycles uint64
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			s := readMemSample(ms)
			if s.cycles == cycles {
				continue // the live heap is only known after a cycle
			}
			cycles = s.cycles
			// Move by more than an eighth only: no churn from small changes of the live heap.
			if next := memoryLimitFor(limit, s); next > applied+applied/8 || next < applied-applied/8 || next == limit && applied != limit {
				applied = next
				debug.SetMemoryLimit(applied)
			}
		}
	}()
	return func() { close(done) }
}
