package main

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Result is one measured scenario.
type Result struct {
	Name     string  `json:"name"`
	Clients  int     `json:"clients"`
	Accounts int     `json:"accounts,omitempty"`
	Ops      int     `json:"ops"`    // successful operations
	Errors   int     `json:"errors"` // failed operations
	Seconds  float64 `json:"seconds"`
	Rate     float64 `json:"rate"` // successful operations per second
	Latency  Dist    `json:"latency_ms"`
	Bytes    int64   `json:"bytes,omitempty"` // bytes read (getRepo)
	// Server process, when its PID is known: CPU seconds used during the scenario, as cores and per op.
	ServerCPUSeconds float64 `json:"server_cpu_seconds,omitempty"`
	ServerCPUCores   float64 `json:"server_cpu_cores,omitempty"`
	ServerCPUPerOpMS float64 `json:"server_cpu_per_op_ms,omitempty"`
	ServerRSSAfterKB int64   `json:"server_rss_after_kb,omitempty"`
	// The load tool's own CPU (it shares the machine with the server): cores used during the scenario.
	ToolCPUCores float64        `json:"tool_cpu_cores"`
	FirstError   string         `json:"first_error,omitempty"`
	Firehose     *FirehoseStats `json:"firehose,omitempty"`
}

// Dist summarizes a set of durations in milliseconds.
type Dist struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// summarize sorts d in place.
func summarize(d []time.Duration) Dist {
	if len(d) == 0 {
		return Dist{}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	var sum time.Duration
	for _, v := range d {
		sum += v
	}
	ms := func(v time.Duration) float64 { return float64(v) / float64(time.Millisecond) }
	return Dist{
		N:    len(d),
		Mean: ms(sum / time.Duration(len(d))),
		P50:  ms(percentile(d, 0.50)),
		P90:  ms(percentile(d, 0.90)),
		P99:  ms(percentile(d, 0.99)),
		Max:  ms(d[len(d)-1]),
	}
}

// percentile of sorted d by the nearest-rank method.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(p*float64(len(d))+0.999999) - 1
	return d[min(max(i, 0), len(d)-1)]
}

// op is one request of a scenario; worker is the client index, i the global op index.
type op func(ctx context.Context, worker, i int) error

// limits bound a scenario: it stops at whichever comes first.
type limits struct {
	Duration time.Duration
	Count    int
}

// run runs fn from clients goroutines until the limits are reached and measures every call.
func run(ctx context.Context, name string, clients int, lim limits, fn op) *Result {
	ctx, cancel := context.WithTimeout(ctx, lim.Duration)
	defer cancel()
	var (
		next     atomic.Int64
		mu       sync.Mutex
		lat      []time.Duration
		errs     int
		firstErr string
		wg       sync.WaitGroup
	)
	start := time.Now()
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			var myErrs int
			var myFirst string
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if lim.Count > 0 && i >= lim.Count {
					break
				}
				t0 := time.Now()
				err := fn(ctx, w, i)
				if err != nil {
					if ctx.Err() != nil {
						break // cut off by the deadline: not a server error
					}
					myErrs++
					if myFirst == "" {
						myFirst = err.Error()
					}
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += myErrs
			if firstErr == "" {
				firstErr = myFirst
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	r := &Result{Name: name, Clients: clients, Ops: len(lat), Errors: errs, Seconds: secs, FirstError: firstErr}
	if secs > 0 {
		r.Rate = float64(len(lat)) / secs
	}
	r.Latency = summarize(lat)
	return r
}
