package pds_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/internal/testplc"
)

var (
	benchSubs    = flag.Int("firehose.subs", 100, "BenchmarkFirehose: websocket subscribers (the issue's goal: 1000)")
	benchWriters = flag.Int("firehose.writers", 8, "BenchmarkFirehose: concurrent writers, one account each")
)

// BenchmarkFirehose measures the firehose under load: the real `pds serve` binary (built from this tree, run as
// its own process so its RSS is the server's alone), -firehose.writers accounts writing createRecord as fast as
// the server takes them, and -firehose.subs websocket subscribers reading every event. One op = one commit.
//
//	go test ./pds -run '^$' -bench BenchmarkFirehose -benchtime 3000x -firehose.subs 1000
//
// Metrics: writes/s (commits/s at the server), delivered/s (events received by all subscribers together),
// p50/p99/max delay from the commit's time (set in the repo transaction, millisecond resolution) to its receipt,
// server RSS (before the subscribers connect, idle with them connected, and peak during the run), Go heap in use
// plus goroutine stacks added per idle subscriber (after a GC), and dropped subscribers (ConsumerTooSlow; must
// be 0).
func BenchmarkFirehose(b *testing.B) {
	nsubs, nwriters := *benchSubs, *benchWriters
	srv := startBenchServer(b)
	b.Logf("server %s, pprof %s (pid %d)", srv.url, srv.pprof, srv.cmd.Process.Pid)
	accts := make([]*benchAccount, nwriters)
	for i := range accts {
		accts[i] = srv.createAccount(b, fmt.Sprintf("bench%d", i))
	}
	// Wait until the account events are on the stream, so subscribers count only this run's commits.
	srv.waitHead(b, int64(4*nwriters))
	rssBase, memBase := srv.rss(b), srv.goMemory(b)

	subs := make([]*benchSub, nsubs)
	for i := range subs {
		subs[i] = dialBenchSub(b, srv.url)
	}
	defer func() {
		for _, s := range subs {
			s.conn.Close()
		}
	}()
	time.Sleep(200 * time.Millisecond) // let the server settle (goroutines started, buffers allocated)
	rssSubs, memSubs := srv.rss(b), srv.goMemory(b)

	peak := atomic.Int64{}
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if r := srv.rssOrZero(); r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-stopSampling:
				return
			case <-t.C:
			}
		}
	}()

	b.ResetTimer()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, a := range accts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				if err := srv.createRecord(a, i); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	writeTime := time.Since(start)
	// Every subscriber must receive all b.N commits.
	deadline := time.Now().Add(2*time.Minute + time.Duration(b.N)*time.Millisecond)
	for _, s := range subs {
		for s.commits.Load() < int64(b.N) && s.err.Load() == nil && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	deliverTime := time.Since(start)
	b.StopTimer()
	close(stopSampling)
	sampler.Wait()

	dropped, received := 0, int64(0)
	var hist [delayBuckets]int64
	for _, s := range subs {
		if s.err.Load() != nil {
			dropped++
		}
		received += s.commits.Load()
		s.mu.Lock()
		for i, n := range s.hist {
			hist[i] += int64(n)
		}
		s.mu.Unlock()
	}
	if dropped > 0 || received != int64(nsubs)*int64(b.N) {
		b.Errorf("%d of %d subscribers dropped; %d of %d events delivered", dropped, nsubs, received, int64(nsubs)*int64(b.N))
	}
	b.ReportMetric(float64(b.N)/writeTime.Seconds(), "writes/s")
	b.ReportMetric(float64(received)/deliverTime.Seconds(), "delivered/s")
	b.ReportMetric(percentile(hist[:], 0.50), "p50-ms")
	b.ReportMetric(percentile(hist[:], 0.99), "p99-ms")
	b.ReportMetric(percentile(hist[:], 1), "max-ms")
	b.ReportMetric(float64(rssBase)/(1<<20), "rss-base-MB")
	b.ReportMetric(float64(rssSubs)/(1<<20), "rss-idle-MB")
	b.ReportMetric(float64(peak.Load())/(1<<20), "rss-peak-MB")
	if nsubs > 0 {
		b.ReportMetric(float64(memSubs-memBase)/float64(nsubs)/1024, "heap+stack-KB/sub")
	}
	b.ReportMetric(float64(dropped), "dropped")
}

// delayBuckets: 1 ms buckets; the last one collects everything slower.
const delayBuckets = 10_001

func percentile(hist []int64, q float64) float64 {
	var total int64
	for _, n := range hist {
		total += n
	}
	if total == 0 {
		return 0
	}
	want := int64(q * float64(total))
	if want < 1 {
		want = 1
	}
	var seen int64
	for i, n := range hist {
		seen += n
		if seen >= want {
			return float64(i)
		}
	}
	return float64(len(hist) - 1)
}

// benchServer is `pds serve` running as a child process.
type benchServer struct {
	url    string
	pprof  string // the server's net/http/pprof (PDS_PPROF_ADDR)
	cmd    *exec.Cmd
	client *http.Client
}

// buildPDS builds cmd/pds into the benchmark's temp dir (the build cache makes repeats a link step).
func buildPDS(b *testing.B) string {
	path := filepath.Join(b.TempDir(), "pds")
	if out, err := exec.Command("go", "build", "-o", path, "github.com/pdsgo/pds/cmd/pds").CombinedOutput(); err != nil {
		b.Fatalf("go build ./cmd/pds: %v\n%s", err, out)
	}
	return path
}

func startBenchServer(b *testing.B) *benchServer {
	b.Helper()
	bin := buildPDS(b)
	plcURL := testplc.Start(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	pprofAddr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(),
		"PDS_HOSTNAME=localhost",
		"PDS_PORT="+strconv.Itoa(port),
		"PDS_DATA_DIRECTORY="+b.TempDir(),
		"PDS_DID_PLC_URL="+plcURL,
		"PDS_INVITE_REQUIRED=false",
		"PDS_ADMIN_PASSWORD=bench",
		"PDS_RATE_LIMITS_ENABLED=false",
		"PDS_PPROF_ADDR="+pprofAddr,
	)
	var logs bytes.Buffer
	cmd.Stderr = &lockedWriter{w: &logs}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	s := &benchServer{url: fmt.Sprintf("http://localhost:%d", port), pprof: "http://" + pprofAddr, cmd: cmd, client: &http.Client{
		Timeout:   time.Minute,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64},
	}}
	b.Cleanup(func() { testpds.StopProcess(cmd) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := s.client.Get(s.url + "/xrpc/_health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("pds serve did not come up: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// rss is the server process's resident set size in bytes.
func (s *benchServer) rss(b *testing.B) int64 {
	r := s.rssOrZero()
	if r == 0 {
		b.Fatal("cannot read the server's RSS from /proc")
	}
	return r
}

func (s *benchServer) rssOrZero() int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// goMemory is the server's Go heap in use plus goroutine stacks, after a GC (from its pprof endpoint): unlike
// RSS, it does not depend on when the runtime returns memory to the OS.
func (s *benchServer) goMemory(b *testing.B) int64 {
	resp, err := s.client.Get(s.pprof + "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var heap, stack int64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "# HeapInuse = "); ok {
			heap, _ = strconv.ParseInt(v, 10, 64)
		}
		if v, ok := strings.CutPrefix(line, "# Stack = "); ok {
			stack, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	if heap == 0 {
		b.Fatal("no HeapInuse in the server's heap profile")
	}
	return heap + stack
}

type benchAccount struct{ did, token string }

func (s *benchServer) post(nsid, token string, body any, out any) error {
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, s.url+"/xrpc/"+nsid, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %d %s", nsid, resp.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func (s *benchServer) createAccount(b *testing.B, name string) *benchAccount {
	var out struct{ DID, AccessJwt string }
	if err := s.post("com.atproto.server.createAccount", "", map[string]any{
		"handle": name + ".test", "email": name + "@example.com", "password": "password-" + name,
	}, &out); err != nil {
		b.Fatal(err)
	}
	return &benchAccount{did: out.DID, token: out.AccessJwt}
}

func (s *benchServer) createRecord(a *benchAccount, i int64) error {
	return s.post("com.atproto.repo.createRecord", a.token, map[string]any{
		"repo": a.did, "collection": "app.bsky.feed.post",
		"record": map[string]any{"$type": "app.bsky.feed.post", "text": fmt.Sprintf("post %d", i), "createdAt": time.Now().UTC().Format(time.RFC3339)},
	}, nil)
}

// WaitHead waits until a replay from 0 has reached seq.
func (s *benchServer) waitHead(b *testing.B, seq int64) {
	conn, _, err := websocket.DefaultDialer.Dial(strings.Replace(s.url, "http", "ws", 1)+"/xrpc/com.atproto.sync.subscribeRepos?cursor=0", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		_, raw, err := conn.ReadMessage()
		if err != nil {
			b.Fatalf("waiting for seq %d: %v", seq, err)
		}
		if n, _, err := frameSeqTime(raw); err == nil && n >= seq {
			return
		}
	}
}

// benchSub is one subscriber: it reads every frame and records commit delays.
type benchSub struct {
	conn    *websocket.Conn
	commits atomic.Int64
	err     atomic.Pointer[error]
	mu      sync.Mutex
	hist    []uint32
}

func dialBenchSub(b *testing.B, url string) *benchSub {
	conn, _, err := websocket.DefaultDialer.Dial(strings.Replace(url, "http", "ws", 1)+"/xrpc/com.atproto.sync.subscribeRepos", nil)
	if err != nil {
		b.Fatal(err)
	}
	s := &benchSub{conn: conn, hist: make([]uint32, delayBuckets)}
	go func() {
		var buf bytes.Buffer // reused: a thousand subscribers must not measure the client's allocator
		for {
			_, r, err := conn.NextReader()
			if err == nil {
				buf.Reset()
				_, err = buf.ReadFrom(r)
			}
			now := time.Now()
			if err != nil {
				s.err.Store(&err)
				return
			}
			_, t, err := frameSeqTime(buf.Bytes())
			if err != nil {
				s.err.Store(&err)
				return
			}
			if t.IsZero() {
				continue // not a commit
			}
			ms := int(now.Sub(t) / time.Millisecond)
			s.mu.Lock()
			s.hist[min(max(ms, 0), delayBuckets-1)]++
			s.mu.Unlock()
			s.commits.Add(1)
		}
	}()
	return s
}

// frameSeqTime reads a frame's seq and, for #commit frames, its time, without decoding the blocks or
// allocating. An error frame is an error.
func frameSeqTime(raw []byte) (int64, time.Time, error) {
	w := cborWalk{b: raw}
	var op int64
	var typ []byte
	if err := w.fields(func(key []byte, maj byte, v uint64, text []byte) {
		switch string(key) {
		case "op":
			op = int64(v)
			if maj == 1 {
				op = -1 - int64(v)
			}
		case "t":
			typ = text
		}
	}); err != nil {
		return 0, time.Time{}, err
	}
	if op != 1 {
		return 0, time.Time{}, fmt.Errorf("error frame")
	}
	var seq int64
	var ts []byte
	if err := w.fields(func(key []byte, maj byte, v uint64, text []byte) {
		switch string(key) {
		case "seq":
			seq = int64(v)
		case "time":
			ts = text
		}
	}); err != nil {
		return 0, time.Time{}, err
	}
	if string(typ) != "#commit" {
		return seq, time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, string(ts))
	return seq, t, err
}

// cborWalk reads a CBOR map's text and integer values as strings, skipping everything else.
type cborWalk struct {
	b   []byte
	pos int
}

var errShortCBOR = errors.New("short or unsupported CBOR")

func (w *cborWalk) head() (byte, uint64, error) {
	if w.pos >= len(w.b) {
		return 0, 0, errShortCBOR
	}
	maj, info := w.b[w.pos]>>5, w.b[w.pos]&0x1f
	w.pos++
	n := 0
	switch {
	case info < 24:
		return maj, uint64(info), nil
	case info == 24:
		n = 1
	case info == 25:
		n = 2
	case info == 26:
		n = 4
	case info == 27:
		n = 8
	default:
		if maj == 7 {
			return maj, uint64(info), nil
		}
		return 0, 0, errShortCBOR
	}
	if w.pos+n > len(w.b) {
		return 0, 0, errShortCBOR
	}
	var v uint64
	for _, c := range w.b[w.pos : w.pos+n] {
		v = v<<8 | uint64(c)
	}
	w.pos += n
	return maj, v, nil
}

func (w *cborWalk) skip() error {
	maj, v, err := w.head()
	if err != nil {
		return err
	}
	switch maj {
	case 2, 3:
		if w.pos+int(v) > len(w.b) {
			return errShortCBOR
		}
		w.pos += int(v)
	case 4:
		for range v {
			if err := w.skip(); err != nil {
				return err
			}
		}
	case 5:
		for range 2 * v {
			if err := w.skip(); err != nil {
				return err
			}
		}
	case 6:
		return w.skip()
	}
	return nil
}

// fields walks a map with text keys, calling fn with each integer or text value (others are skipped).
func (w *cborWalk) fields(fn func(key []byte, maj byte, v uint64, text []byte)) error {
	maj, n, err := w.head()
	if err != nil || maj != 5 {
		return errShortCBOR
	}
	for range n {
		maj, l, err := w.head()
		if err != nil || maj != 3 || w.pos+int(l) > len(w.b) {
			return errShortCBOR
		}
		key := w.b[w.pos : w.pos+int(l)]
		w.pos += int(l)
		start := w.pos
		maj, v, err := w.head()
		if err != nil {
			return err
		}
		switch maj {
		case 0, 1:
			fn(key, maj, v, nil)
		case 3:
			if w.pos+int(v) > len(w.b) {
				return errShortCBOR
			}
			fn(key, maj, 0, w.b[w.pos:w.pos+int(v)])
			w.pos += int(v)
		default:
			w.pos = start
			if err := w.skip(); err != nil {
				return err
			}
		}
	}
	return nil
}
