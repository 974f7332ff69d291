package main

import (
	"runtime/metrics"
	"time"
)

// Returning freed memory when the server goes quiet. The Go runtime keeps freed heap mapped and gives it back
// slowly: its background scavenger aims at about a tenth over the heap goal, and the goal only falls at the
// next GC, which a quiet server does not run. After a burst (a thousand firehose subscribers leaving, a batch
// of signups with scrypt's 16 MB each) that is tens of MB of RSS held for nothing until the next burst.
//
// So: when no GC cycle has completed for trimQuiet (nothing is allocating much) and the heap maps at least
// trimMinExcess bytes more than was live after the last trim (free spans not yet returned, and objects
// allocated since, garbage or not: a quiet server has not run the GC that would tell), one debug.FreeOSMemory
// (a GC and a full scavenge: milliseconds on a small heap) returns what is not live. Under load GC cycles keep
// coming and the trimmer does nothing; once quiet it trims once, and the live heap it leaves is the new base.
const (
	trimInterval  = time.Second
	trimQuiet     = 2 * time.Second
	trimMinExcess = 4 << 20
)

var trimMetricNames = []string{
	"/gc/cycles/total:gc-cycles", "/memory/classes/heap/free:bytes", "/memory/classes/heap/objects:bytes",
	"/gc/heap/live:bytes",
}

// trimSample: GC cycles completed, heap bytes mapped (objects and free spans not returned), and live at the
// last GC.
type trimSample struct {
	cycles       uint64
	mapped, live uint64
}

func readTrimSample(ms []metrics.Sample) trimSample {
	metrics.Read(ms)
	u := func(i int) uint64 { return metricUint64(ms[i]) }
	return trimSample{cycles: u(0), mapped: u(1) + u(2), live: u(3)}
}

// memTrimmer decides when to trim; now and trim are the clock and debug.FreeOSMemory outside tests.
type memTrimmer struct {
	quiet     time.Duration
	minExcess uint64

	cycles    uint64    // GC cycles at the last observation
	lastCycle time.Time // when the cycle count last changed (or the trimmer started)
	base      uint64    // live heap after the last trim (or at start)
}

// observe takes a sample at now and says whether to trim.
func (t *memTrimmer) observe(s trimSample, now time.Time) bool {
	if s.cycles != t.cycles {
		t.cycles, t.lastCycle = s.cycles, now
		return false
	}
	return now.Sub(t.lastCycle) >= t.quiet && s.mapped >= t.base+t.minExcess
}

// trimmed records the trim's own GC cycle, so that it does not count as activity, and the live heap it left.
func (t *memTrimmer) trimmed(s trimSample, now time.Time) {
	t.cycles, t.lastCycle, t.base = s.cycles, now, s.live
}

// startMemoryTrim runs the trimmer every interval, calling trim (debug.FreeOSMemory) when it says so; the
// returned function stops it.
func startMemoryTrim(interval, quiet time.Duration, minExcess uint64, trim func()) (stop func()) {
	ms := make([]metrics.Sample, len(trimMetricNames))
	for i, n := range trimMetricNames {
		ms[i].Name = n
	}
	s := readTrimSample(ms)
	tr := &memTrimmer{quiet: quiet, minExcess: minExcess, cycles: s.cycles, lastCycle: time.Now(), base: s.live}
	done := make(chan struct{})
	go func() {
		tk := time.NewTicker(interval)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
			}
			if tr.observe(readTrimSample(ms), time.Now()) {
				trim()
				tr.trimmed(readTrimSample(ms), time.Now())
			}
		}
	}()
	return func() { close(done) }
}
