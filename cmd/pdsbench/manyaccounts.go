package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The "many accounts" figure of issue 9 (docs/performance.md): a data directory seeded with `pdsbench seed`,
// then `pdsbench startup` runs the real binary on it: time from exec to the first answer, open files and RSS
// when idle, and open files while and after touching many distinct accounts.

var manyAccountsCommands = map[string]func([]string) error{
	"seed":    seedMain,
	"startup": startupMain,
	"backup":  backupLoadMain, // backupload.go
}

const startupUsage = `usage: pdsbench startup -bin PATH -data DIR [flags]

Starts the PDS binary (PATH serve) on DIR -runs times: measures the time from exec to the first 200 from
/xrpc/_health, the server's CPU time, open file descriptors (/proc/<pid>/fd) and RSS once it answers, then
stops it with SIGTERM (a clean stop) and waits for it to exit 0. On the last run it then touches -touch distinct
seeded accounts (resolveHandle, describeRepo, getLatestCommit, getRecord) and writes a record as -writers of
them (createSession with -password, createRecord), sampling the open files throughout. The environment is
passed on (PDS_HOSTNAME must match the seed's); PDS_DATA_DIRECTORY and PDS_PORT are set, rate limits are off,
and PDS_DID_PLC_URL defaults to an address nothing listens on (nothing here resolves a DID).

flags:
`

type startupFlags struct {
	bin, data, prefix, password, out, logPath string
	runs, touch, writers, accounts, clients   int
	idleWait                                  time.Duration
}

// StartupRun is one start of the binary.
type StartupRun struct {
	ReadyMS  float64 `json:"ready_ms"`        // exec to the first 200 from /xrpc/_health
	CPUMS    float64 `json:"cpu_ms"`          // the server's utime+stime when it first answered
	FDs      int     `json:"fds"`             // open descriptors right after the first answer
	FDsIdle  int     `json:"fds_idle"`        // one second later
	RepoFDs  int     `json:"repo_fds"`        // of which under actors/ (per-account files)
	RSSKB    int64   `json:"rss_kb"`          // one second after the first answer
	StopMS   float64 `json:"stop_ms"`         // SIGTERM to exit
	ExitCode int     `json:"exit_code"`       // 0: clean stop
	Touch    *Touch  `json:"touch,omitempty"` // last run only
}

// Touch is what touching many accounts did to the server's open files.
type Touch struct {
	Accounts        int     `json:"accounts"` // distinct accounts read
	Writers         int     `json:"writers"`  // accounts that logged in and wrote a record
	Errors          int     `json:"errors"`   // unexpected answers
	FirstError      string  `json:"first_error,omitempty"`
	Seconds         float64 `json:"seconds"`            // the reads
	FDsBefore       int     `json:"fds_before"`         // before the first request
	FDsPeak         int     `json:"fds_peak"`           // highest sample (every 20 ms) during reads and writes
	RepoFilesPeak   int     `json:"repo_files_peak"`    // most distinct repo.sqlite files open at one sample
	FDsAfterReads   int     `json:"fds_after_reads"`    // after the reads
	FDsAfterWrites  int     `json:"fds_after_writes"`   // after the writes
	FDsAfterIdle    int     `json:"fds_after_idle"`     // after -idle-wait without requests (idle SQLite connections close after 30 s)
	RepoFDsAfter    int     `json:"repo_fds_after"`     // descriptors under actors/ after the writes
	RepoFDsIdle     int     `json:"repo_fds_idle"`      // and after the idle wait
	RSSKBAfterReads int64   `json:"rss_kb_after_reads"` // after the reads
	RSSKBAfter      int64   `json:"rss_kb_after"`       // after the writes
	RSSKBAfterIdle  int64   `json:"rss_kb_after_idle"`  // after the idle wait
	IdleWaitSeconds float64 `json:"idle_wait_seconds"`  // how long it waited before FDsAfterIdle
}

// StartupOutput is the JSON `pdsbench startup` writes.
type StartupOutput struct {
	Tool     string        `json:"tool"`
	Machine  Machine       `json:"machine"`
	Started  time.Time     `json:"started"`
	Data     string        `json:"data"`
	Accounts int64         `json:"accounts"` // -accounts: how many the seed made
	Runs     []*StartupRun `json:"runs"`
	// Medians over the runs.
	ReadyMSMedian float64 `json:"ready_ms_median"`
	FDsMedian     float64 `json:"fds_median"`
	RSSKBMedian   float64 `json:"rss_kb_median"`
}

func startupMain(args []string) error {
	fs := flag.NewFlagSet("pdsbench startup", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), startupUsage)
		fs.PrintDefaults()
	}
	var f startupFlags
	fs.StringVar(&f.bin, "bin", "", "the pds binary (go build -o /tmp/pds ./cmd/pds)")
	fs.StringVar(&f.data, "data", "", "the data directory (seeded with pdsbench seed)")
	fs.IntVar(&f.runs, "runs", 5, "starts of the binary")
	fs.IntVar(&f.accounts, "accounts", 0, "accounts seeded with -prefix (the touched accounts are spread over them)")
	fs.IntVar(&f.touch, "touch", 2000, "distinct accounts to read on the last run (at most -accounts; 0: none)")
	fs.IntVar(&f.writers, "writers", 10, "accounts that log in and create a record on the last run")
	fs.IntVar(&f.clients, "clients", 8, "concurrent clients while touching")
	fs.StringVar(&f.prefix, "prefix", "seed", "handle prefix of the seeded accounts")
	fs.StringVar(&f.password, "password", "seed-password", "their password")
	fs.DurationVar(&f.idleWait, "idle-wait", 0, "after touching, wait this long without requests and count the open files again (35s: past the 30 s idle close of SQLite connections)")
	fs.StringVar(&f.out, "out", "", "write the JSON results here")
	fs.StringVar(&f.logPath, "log", "", "append the server's output here (default discarded)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if f.bin == "" || f.data == "" {
		return errors.New("-bin and -data are required")
	}
	if f.runs < 1 {
		return errors.New("-runs must be >= 1")
	}
	f.touch = min(f.touch, f.accounts)
	f.writers = min(f.writers, f.accounts)
	out := &StartupOutput{Tool: "pdsbench startup", Machine: machine(), Started: time.Now().UTC(), Data: f.data, Accounts: int64(f.accounts)}
	var logw io.Writer = io.Discard
	if f.logPath != "" {
		lf, err := os.OpenFile(f.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer lf.Close()
		logw = lf
	}
	for i := range f.runs {
		run, err := startupRun(&f, i == f.runs-1, logw)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		out.Runs = append(out.Runs, run)
		fmt.Fprintf(os.Stderr, "run %d: ready %.1f ms (server CPU %.0f ms), %d fds (%d under actors/), RSS %.1f MB, stop %.0f ms, exit %d\n",
			i+1, run.ReadyMS, run.CPUMS, run.FDs, run.RepoFDs, float64(run.RSSKB)/1024, run.StopMS, run.ExitCode)
		if t := run.Touch; t != nil {
			fmt.Fprintf(os.Stderr, "  touched %d accounts in %.1fs, %d wrote (errors %d %s): fds %d before, peak %d (at most %d repo files open), %d after reads, %d after writes (%d under actors/)",
				t.Accounts, t.Seconds, t.Writers, t.Errors, t.FirstError, t.FDsBefore, t.FDsPeak, t.RepoFilesPeak, t.FDsAfterReads, t.FDsAfterWrites, t.RepoFDsAfter)
			if t.IdleWaitSeconds > 0 {
				fmt.Fprintf(os.Stderr, ", %d after %.0fs idle (%d under actors/, RSS %.1f MB)", t.FDsAfterIdle, t.IdleWaitSeconds, t.RepoFDsIdle, float64(t.RSSKBAfterIdle)/1024)
			}
			fmt.Fprintf(os.Stderr, "; RSS %.1f MB after the reads, %.1f MB after the writes\n", float64(t.RSSKBAfterReads)/1024, float64(t.RSSKBAfter)/1024)
		}
	}
	var ready, fds, rss []float64
	for _, r := range out.Runs {
		ready = append(ready, r.ReadyMS)
		fds = append(fds, float64(r.FDs))
		rss = append(rss, float64(r.RSSKB))
	}
	out.ReadyMSMedian, out.FDsMedian, out.RSSKBMedian = median(ready), median(fds), median(rss)
	out.Machine.LoadEnd = loadAvg()
	fmt.Fprintf(os.Stderr, "median of %d: ready %.1f ms, %.0f fds, RSS %.1f MB\n", len(out.Runs), out.ReadyMSMedian, out.FDsMedian, out.RSSKBMedian/1024)
	return writeJSONResult(out, f.out)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startupRun starts the binary once, measures, optionally touches accounts, and stops it.
func startupRun(f *startupFlags, touch bool, logw io.Writer) (*StartupRun, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(f.data)
	if err != nil {
		return nil, err
	}
	env := os.Environ()
	setDefault := func(k, v string) {
		if os.Getenv(k) == "" {
			env = append(env, k+"="+v)
		}
	}
	setDefault("PDS_HOSTNAME", "localhost")
	setDefault("PDS_DID_PLC_URL", "http://127.0.0.1:9") // discard port: nothing at start-up resolves a DID
	env = append(env, "PDS_DATA_DIRECTORY="+abs, "PDS_PORT="+strconv.Itoa(port), "PDS_BIND_ADDRESS=127.0.0.1",
		"PDS_RATE_LIMITS_ENABLED=false")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	hc := &http.Client{Transport: &http.Transport{DialContext: loopbackDialer()}, Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()

	cmd := exec.Command(f.bin, "serve")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logw, logw
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	pid := cmd.Process.Pid
	run := &StartupRun{}
	stop := func() error {
		t := time.Now()
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			<-exited
			return errors.New("the server did not stop within 60 s of SIGTERM")
		}
		run.StopMS = ms(time.Since(t))
		run.ExitCode = cmd.ProcessState.ExitCode()
		return nil
	}

	// Poll until the first 200: connection refused (not listening yet) is immediate; a connection the kernel
	// accepted before Serve waits for the answer.
	for {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("the server exited before answering: %v (see -log)", err)
		default:
		}
		resp, err := hc.Get(base + "/xrpc/_health")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Since(start) > 60*time.Second {
			stop()
			return nil, errors.New("no answer from /xrpc/_health within 60 s")
		}
		time.Sleep(time.Millisecond)
	}
	run.ReadyMS = ms(time.Since(start))
	if st, err := readProc(pid); err == nil {
		run.CPUMS = st.CPUSeconds * 1000
	}
	run.FDs, run.RepoFDs, _ = countFDs(pid)
	time.Sleep(time.Second)
	run.FDsIdle, _, _ = countFDs(pid)
	if st, err := readProc(pid); err == nil {
		run.RSSKB = st.RSSKB
	}
	if touch && f.touch > 0 {
		t, err := touchAccounts(f, newClient(base, f.clients), pid)
		if err != nil {
			stop()
			return nil, err
		}
		run.Touch = t
	}
	if err := stop(); err != nil {
		return nil, err
	}
	return run, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// countFDs counts the process's open descriptors, those on files under an actors/ directory (repositories),
// and the distinct repo.sqlite files among them.
func countFDs(pid int) (total, repo, repoFiles int) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return -1, -1, -1
	}
	files := map[string]bool{}
	for _, e := range ents {
		total++
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || !strings.Contains(target, "/actors/") {
			continue
		}
		repo++
		files[strings.TrimSuffix(strings.TrimSuffix(target, "-wal"), "-shm")] = true
	}
	return total, repo, len(files)
}

// touchAccounts reads f.touch distinct seeded accounts (spread over all of them) with f.clients clients, then
// logs in as f.writers of them and creates a record each, sampling the server's open files every 20 ms.
func touchAccounts(f *startupFlags, c *client, pid int) (*Touch, error) {
	ctx := context.Background()
	dom, err := c.describeServer(ctx)
	if err != nil {
		return nil, err
	}
	if len(dom.AvailableUserDomains) == 0 {
		return nil, errors.New("describeServer: no handle domain")
	}
	domain := dom.AvailableUserDomains[0]
	t := &Touch{Accounts: f.touch, Writers: f.writers}
	t.FDsBefore, _, _ = countFDs(pid)

	var peak, peakFiles atomic.Int64
	sampleDone := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			n, _, files := countFDs(pid)
			if int64(n) > peak.Load() {
				peak.Store(int64(n))
			}
			if int64(files) > peakFiles.Load() {
				peakFiles.Store(int64(files))
			}
			select {
			case <-sampleDone:
				return
			case <-tick.C:
			}
		}
	}()

	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		t.Errors++
		if t.FirstError == "" {
			t.FirstError = err.Error()
		}
	}
	// The k-th touched account is number k*accounts/touch: spread over the directory, all distinct.
	idx := func(k, n int) int { return int(int64(k) * int64(f.accounts) / int64(n)) }
	work := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range f.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				if err := touchOne(ctx, c, seedHandle(f.prefix, idx(k, f.touch), domain)); err != nil {
					fail(err)
				}
			}
		}()
	}
	for k := range f.touch {
		work <- k
	}
	close(work)
	wg.Wait()
	t.Seconds = time.Since(start).Seconds()
	t.FDsAfterReads, _, _ = countFDs(pid)
	if st, err := readProc(pid); err == nil {
		t.RSSKBAfterReads = st.RSSKB
	}

	// Writers, one after the other (each login's scrypt takes 16 MiB of heap: concurrent logins would make the
	// RSS figure about scrypt), on accounts offset by half a stride from the read ones, so they open afresh.
	for k := range f.writers {
		i := (idx(k, f.writers) + f.accounts/(2*max(f.touch, 1))) % f.accounts
		if err := writeOne(ctx, c, seedHandle(f.prefix, i, domain), f.password); err != nil {
			fail(err)
		}
	}
	close(sampleDone)
	sampler.Wait()
	t.FDsPeak, t.RepoFilesPeak = int(peak.Load()), int(peakFiles.Load())
	t.FDsAfterWrites, t.RepoFDsAfter, _ = countFDs(pid)
	if st, err := readProc(pid); err == nil {
		t.RSSKBAfter = st.RSSKB
	}
	if f.idleWait > 0 {
		c.closeIdle()
		time.Sleep(f.idleWait)
		t.FDsAfterIdle, t.RepoFDsIdle, _ = countFDs(pid)
		if st, err := readProc(pid); err == nil {
			t.RSSKBAfterIdle = st.RSSKB
		}
		t.IdleWaitSeconds = f.idleWait.Seconds()
	}
	return t, nil
}

// touchOne reads one account: its DID by handle (account.sqlite only), then three reads that open its repo.
// The seeded repos are empty, so getRecord answers RecordNotFound after reading the repo.
func touchOne(ctx context.Context, c *client, handle string) error {
	var r struct {
		DID string `json:"did"`
	}
	if _, err := c.call(ctx, http.MethodGet, "com.atproto.identity.resolveHandle", url.Values{"handle": {handle}}, nil, &r, reqOpts{}); err != nil {
		return fmt.Errorf("resolveHandle %s: %w", handle, err)
	}
	if _, err := c.call(ctx, http.MethodGet, "com.atproto.repo.describeRepo", url.Values{"repo": {r.DID}}, nil, nil, reqOpts{}); err != nil {
		return fmt.Errorf("describeRepo %s: %w", r.DID, err)
	}
	if _, err := c.call(ctx, http.MethodGet, "com.atproto.sync.getLatestCommit", url.Values{"did": {r.DID}}, nil, nil, reqOpts{}); err != nil {
		return fmt.Errorf("getLatestCommit %s: %w", r.DID, err)
	}
	_, err := c.call(ctx, http.MethodGet, "com.atproto.repo.getRecord",
		url.Values{"repo": {r.DID}, "collection": {"app.bsky.actor.profile"}, "rkey": {"self"}}, nil, nil, reqOpts{})
	var xe *xrpcError
	if errors.As(err, &xe) && xe.Name == "RecordNotFound" {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("getRecord %s: %w", r.DID, err)
	}
	return nil
}

// writeOne logs in as a seeded account (its known password) and creates a record.
func writeOne(ctx context.Context, c *client, handle, password string) error {
	var a account
	if _, err := c.call(ctx, http.MethodPost, "com.atproto.server.createSession", nil,
		map[string]any{"identifier": handle, "password": password}, &a, reqOpts{}); err != nil {
		return fmt.Errorf("createSession %s: %w", handle, err)
	}
	if _, err := c.createRecord(ctx, &a, "hello from "+handle); err != nil {
		return fmt.Errorf("createRecord %s: %w", handle, err)
	}
	return nil
}
