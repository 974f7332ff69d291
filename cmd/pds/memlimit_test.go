package main

import (
	"io"
	"log/slog"
	"math"
	"runtime/debug"
	"testing"
)

func TestMemoryLimitFor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name string
		s    memSample
		want int64
	}{
		{"small live heap: the configured limit", memSample{live: 10 * mib, stack: 4 * mib, globals: 1 * mib, gogc: 100}, 64 * mib},
		// goal = 40 + (40+6+2) = 88 MiB; plus a quarter = 110 MiB.
		{"working set beyond it: GOGC's reach", memSample{live: 40 * mib, stack: 6 * mib, globals: 2 * mib, gogc: 100}, 110 * mib},
		// goal = 40 + 48/2 = 64 MiB; plus a quarter = 80 MiB.
		{"GOGC=50", memSample{live: 40 * mib, stack: 6 * mib, globals: 2 * mib, gogc: 50}, 80 * mib},
		{"GOGC=off", memSample{live: 400 * mib, gogc: -1}, 64 * mib},
	} {
		if got := memoryLimitFor(64*mib, c.s); got != c.want {
			t.Errorf("%s: %d MiB, want %d MiB", c.name, got/mib, c.want/mib)
		}
	}
}

func TestStartMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	debug.SetMemoryLimit(math.MaxInt64)
	startMemoryLimit(1<<40, "1GiB", log)() // GOMEMLIMIT wins: the runtime read it at start
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("limit %d applied although GOMEMLIMIT is set", got)
	}
	startMemoryLimit(0, "", log)()
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("limit %d applied for PDS_MEMORY_LIMIT=off", got)
	}
	stop := startMemoryLimit(1<<40, "", log)
	defer stop()
	if got := debug.SetMemoryLimit(-1); got != 1<<40 {
		t.Fatalf("limit %d, want %d", got, int64(1<<40))
	}
}
