package keyedmutex

import (
	"runtime"
	"sync"
	"testing"
)

func TestMutualExclusionPerKey(t *testing.T) {
	var m Map[int]
	var counters [2]int
	var wg sync.WaitGroup
	for i := range 400 {
		key := i % 2
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock := m.Lock(key)
			n := counters[key] // read, yield, write: two holders of one key would lose increments
			runtime.Gosched()
			counters[key] = n + 1
			unlock()
		}()
	}
	wg.Wait()
	if counters[0] != 200 || counters[1] != 200 {
		t.Fatalf("counters %v, want 200 each", counters)
	}
	if n := m.Len(); n != 0 {
		t.Fatalf("%d entries left after every unlock", n)
	}
}

func TestKeysIndependent(t *testing.T) {
	var m Map[int]
	unlockA := m.Lock(1)
	done := make(chan struct{})
	go func() { m.Lock(2)(); close(done) }()
	<-done // would hang if key 2 waited for key 1
	if m.Len() != 1 {
		t.Fatalf("Len %d, want 1 (key 1 held)", m.Len())
	}
	unlockA()
}
