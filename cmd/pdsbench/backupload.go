package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// The write path's latency while a backup round runs (issue 20): `pdsbench backup` starts the real binary on a
// seeded data directory twice, first without backups (the baseline), then with continuous backups to a fresh
// directory, and writes at a fixed rate as -writers seeded accounts throughout. The rounds' times come from the
// server's own "backup round" log lines, so each write is classed by whether it overlapped a round: the first
// (full) round of an empty backup, a later (incremental) round, or none.

const backupLoadUsage = `usage: pdsbench backup -bin PATH -data DIR -accounts N [flags]

Runs the binary (PATH serve) on DIR (seeded with pdsbench seed, -accounts accounts) twice and writes records as
-writers of the seeded accounts (round robin, open loop at -rate writes per second):
  1. without backups for -baseline;
  2. with PDS_BACKUP_URL a new directory (so its first round is a full one; -backup DIR: that one, kept) and
     PDS_BACKUP_INTERVAL=-interval, until the first round has ended and then for -after.
Each createRecord's latency is classed by the server's "backup round" log lines: during the full round, during
an incremental round, outside rounds (and the baseline). The rounds' cost (repositories copied, objects, bytes,
time) is reported from the same lines. The environment is passed on (PDS_HOSTNAME must match the seed's).

flags:
`

type backupLoadFlags struct {
	bin, data, prefix, password, out, logPath string
	backupDir                                 string
	accounts, writers                         int
	rate                                      float64
	interval, baseline, after                 time.Duration
}

// BackupRound is one round as the server logged it.
type BackupRound struct {
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Seconds  float64   `json:"seconds"`
	Accounts int       `json:"accounts"`
	Copied   int       `json:"copied"`
	Objects  int       `json:"objects"`
	Bytes    int64     `json:"bytes"`
}

// BackupLoadOutput is the JSON `pdsbench backup` writes.
type BackupLoadOutput struct {
	Tool     string    `json:"tool"`
	Machine  Machine   `json:"machine"`
	Started  time.Time `json:"started"`
	Accounts int       `json:"accounts"`
	Writers  int       `json:"writers"`
	Rate     float64   `json:"rate"` // writes per second offered
	Interval string    `json:"interval"`
	// createRecord latency (ms) without backups, and with them: overlapping the full first round, an
	// incremental round, no round. With -backup naming an earlier run's backup, "full" is the process's first
	// round, which compares every repository's head with the manifest.
	Baseline          Dist          `json:"baseline_ms"`
	DuringFull        Dist          `json:"during_full_round_ms"`
	DuringIncremental Dist          `json:"during_incremental_round_ms"`
	Outside           Dist          `json:"outside_rounds_ms"`
	Errors            int           `json:"errors"`
	Skipped           int           `json:"skipped"` // ticks with 64 writes already in flight
	FirstError        string        `json:"first_error,omitempty"`
	Rounds            []BackupRound `json:"rounds"`
	AccountDBBytes    int64         `json:"account_sqlite_bytes"` // account.sqlite (+ WAL) at the end
	BackupBytes       int64         `json:"backup_bytes"`         // the backup directory at the end
}

func backupLoadMain(args []string) error {
	fl := flag.NewFlagSet("pdsbench backup", flag.ContinueOnError)
	fl.Usage = func() {
		fmt.Fprint(fl.Output(), backupLoadUsage)
		fl.PrintDefaults()
	}
	var f backupLoadFlags
	fl.StringVar(&f.bin, "bin", "", "the pds binary (go build -o /tmp/pds ./cmd/pds)")
	fl.StringVar(&f.data, "data", "", "the data directory (seeded with pdsbench seed; it gets the writes)")
	fl.IntVar(&f.accounts, "accounts", 0, "accounts seeded with -prefix (the writers are spread over them)")
	fl.IntVar(&f.writers, "writers", 100, "accounts that write")
	fl.Float64Var(&f.rate, "rate", 10, "createRecord calls per second (open loop)")
	fl.DurationVar(&f.interval, "interval", 20*time.Second, "PDS_BACKUP_INTERVAL")
	fl.DurationVar(&f.baseline, "baseline", time.Minute, "how long to write without backups")
	fl.DurationVar(&f.after, "after", 2*time.Minute, "how long to write with backups after the first round")
	fl.StringVar(&f.prefix, "prefix", "seed", "handle prefix of the seeded accounts")
	fl.StringVar(&f.password, "password", "seed-password", "their password")
	fl.StringVar(&f.backupDir, "backup", "", "back up to this directory and keep it (default a new temporary one): a backup made by an earlier run makes the first round the one after a restart (every repository's head compared with the manifest), not a full one")
	fl.StringVar(&f.out, "out", "", "write the JSON results here")
	fl.StringVar(&f.logPath, "log", "", "append the server's output here (default discarded)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if f.bin == "" || f.data == "" || f.accounts < 1 {
		return errors.New("-bin, -data and -accounts are required")
	}
	f.writers = min(max(f.writers, 1), f.accounts)
	var logw io.Writer = io.Discard
	if f.logPath != "" {
		lf, err := os.OpenFile(f.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer lf.Close()
		logw = lf
	}
	out := &BackupLoadOutput{Tool: "pdsbench backup", Machine: machine(), Started: time.Now().UTC(), Accounts: f.accounts,
		Writers: f.writers, Rate: f.rate, Interval: f.interval.String()}

	// 1. The baseline.
	srv, err := startLogged(f.bin, f.data, nil, logw, nil)
	if err != nil {
		return err
	}
	accts, err := loginWriters(srv.base, &f)
	if err != nil {
		srv.stop()
		return err
	}
	fmt.Fprintf(os.Stderr, "baseline: %d writers logged in, writing %.0f/s for %s without backups\n", len(accts), f.rate, f.baseline)
	deadline := time.Now().Add(f.baseline)
	base := writeLoad(srv.base, accts, f.rate, func() bool { return time.Now().After(deadline) })
	if err := srv.stop(); err != nil {
		return err
	}

	// 2. With continuous backups to a new directory.
	backupDir := f.backupDir
	if backupDir == "" {
		if backupDir, err = os.MkdirTemp("", "pdsbench-backup-"); err != nil {
			return err
		}
		defer os.RemoveAll(backupDir)
	} else if backupDir, err = filepath.Abs(backupDir); err != nil {
		return err
	}
	var mu sync.Mutex
	var rounds []BackupRound
	firstDone := make(chan struct{})
	srv, err = startLogged(f.bin, f.data, []string{
		"PDS_BACKUP_URL=file://" + backupDir,
		"PDS_BACKUP_KEY=pdsbench backup passphrase",
		"PDS_BACKUP_INTERVAL=" + f.interval.String(),
	}, logw, func(line string) {
		r, ok := parseRoundLine(line)
		if !ok {
			return
		}
		mu.Lock()
		rounds = append(rounds, r)
		if len(rounds) == 1 {
			close(firstDone)
		}
		mu.Unlock()
		fmt.Fprintf(os.Stderr, "round: %.1fs, %d accounts, %d copied, %d objects, %d bytes\n", r.Seconds, r.Accounts, r.Copied, r.Objects, r.Bytes)
	})
	if err != nil {
		return err
	}
	if accts, err = loginWriters(srv.base, &f); err != nil {
		srv.stop()
		return err
	}
	fmt.Fprintf(os.Stderr, "backups on (interval %s): writing %.0f/s until the first round ends, then for %s\n", f.interval, f.rate, f.after)
	var afterFirst time.Time
	on := writeLoad(srv.base, accts, f.rate, func() bool {
		select {
		case <-firstDone:
			if afterFirst.IsZero() {
				afterFirst = time.Now()
			}
			return time.Since(afterFirst) > f.after
		default:
			return false
		}
	})
	// Let a round in progress end, so every write is classed against complete windows.
	time.Sleep(f.interval / 2)
	if err := srv.stop(); err != nil {
		return err
	}
	mu.Lock()
	out.Rounds = rounds
	mu.Unlock()

	var full, incr, outside, baseline []time.Duration
	for _, s := range base.samples {
		baseline = append(baseline, s.lat)
	}
	for _, s := range on.samples {
		end := s.start.Add(s.lat)
		class := &outside
		for i, r := range out.Rounds {
			if s.start.Before(r.End) && end.After(r.Start) {
				class = &incr
				if i == 0 {
					class = &full
				}
				break
			}
		}
		*class = append(*class, s.lat)
	}
	out.Baseline, out.DuringFull, out.DuringIncremental, out.Outside = summarize(baseline), summarize(full), summarize(incr), summarize(outside)
	out.Errors, out.Skipped = base.errors+on.errors, base.skipped+on.skipped
	out.FirstError = base.firstError
	if out.FirstError == "" {
		out.FirstError = on.firstError
	}
	for _, suffix := range []string{"", "-wal"} {
		if st, err := os.Stat(filepath.Join(f.data, "account.sqlite"+suffix)); err == nil {
			out.AccountDBBytes += st.Size()
		}
	}
	filepath.WalkDir(backupDir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				out.BackupBytes += info.Size()
			}
		}
		return nil
	})
	out.Machine.LoadEnd = loadAvg()
	p := func(name string, d Dist) {
		fmt.Fprintf(os.Stderr, "%-28s n=%-5d p50 %6.1f ms  p90 %6.1f ms  p99 %6.1f ms  max %6.1f ms\n", name, d.N, d.P50, d.P90, d.P99, d.Max)
	}
	p("no backups", out.Baseline)
	p("during the full round", out.DuringFull)
	p("during incremental rounds", out.DuringIncremental)
	p("outside rounds", out.Outside)
	fmt.Fprintf(os.Stderr, "errors %d (%s), skipped %d; account.sqlite %d bytes; backup %d bytes\n", out.Errors, out.FirstError, out.Skipped, out.AccountDBBytes, out.BackupBytes)
	return writeJSONResult(out, f.out)
}

// roundLine matches the continuous backup's log line (slog's text format, pds/backup.Run).
var (
	roundLine = regexp.MustCompile(`msg="backup round"`)
	logAttr   = regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S+)`)
)

// parseRoundLine reads a "backup round" line: its time is the round's end, its duration the round's length.
func parseRoundLine(line string) (BackupRound, bool) {
	if !roundLine.MatchString(line) {
		return BackupRound{}, false
	}
	attrs := map[string]string{}
	for _, m := range logAttr.FindAllStringSubmatch(line, -1) {
		attrs[m[1]] = m[2]
	}
	end, err := time.Parse(time.RFC3339Nano, attrs["time"])
	if err != nil {
		return BackupRound{}, false
	}
	d, err := time.ParseDuration(attrs["duration"])
	if err != nil {
		return BackupRound{}, false
	}
	r := BackupRound{Start: end.Add(-d), End: end, Seconds: d.Seconds()}
	r.Accounts, _ = strconv.Atoi(attrs["accounts"])
	r.Copied, _ = strconv.Atoi(attrs["copied"])
	r.Objects, _ = strconv.Atoi(attrs["objects"])
	r.Bytes, _ = strconv.ParseInt(attrs["bytes"], 10, 64)
	return r, true
}

// loggedServer is the binary running on a data directory.
type loggedServer struct {
	base string
	stop func() error
}

// startLogged starts `bin serve` on data with extra environment, copies its output to logw and hands each
// line to onLine, and waits for its first 200 from /xrpc/_health.
func startLogged(bin, data string, extra []string, logw io.Writer, onLine func(string)) (*loggedServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(data)
	if err != nil {
		return nil, err
	}
	env := os.Environ()
	if os.Getenv("PDS_HOSTNAME") == "" {
		env = append(env, "PDS_HOSTNAME=localhost")
	}
	if os.Getenv("PDS_DID_PLC_URL") == "" {
		env = append(env, "PDS_DID_PLC_URL=http://127.0.0.1:9") // nothing here resolves a DID
	}
	env = append(env, "PDS_DATA_DIRECTORY="+abs, "PDS_PORT="+strconv.Itoa(port), "PDS_BIND_ADDRESS=127.0.0.1",
		"PDS_RATE_LIMITS_ENABLED=false")
	env = append(env, extra...)
	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	lines := make(chan struct{})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintln(logw, sc.Text())
			if onLine != nil {
				onLine(sc.Text())
			}
		}
		io.Copy(io.Discard, pr)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); pw.Close() }()
	stop := func() error {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(120 * time.Second):
			cmd.Process.Kill()
			<-exited
			return errors.New("the server did not stop within 120 s of SIGTERM")
		}
		<-lines
		if c := cmd.ProcessState.ExitCode(); c != 0 {
			return fmt.Errorf("the server exited %d (see -log)", c)
		}
		return nil
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	hc := &http.Client{Transport: &http.Transport{DialContext: loopbackDialer()}, Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err
			return nil, fmt.Errorf("the server exited before answering: %v (see -log)", err)
		default:
		}
		if resp, err := hc.Get(base + "/xrpc/_health"); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return &loggedServer{base: base, stop: stop}, nil
			}
		}
		if time.Since(start) > 2*time.Minute {
			stop()
			return nil, errors.New("no answer from /xrpc/_health within 2 minutes")
		}
	}
}

// loginWriters logs in as f.writers seeded accounts spread over the seeded ones.
func loginWriters(base string, f *backupLoadFlags) ([]*account, error) {
	ctx := context.Background()
	c := newClient(base, 4)
	defer c.closeIdle()
	dom, err := c.describeServer(ctx)
	if err != nil {
		return nil, err
	}
	if len(dom.AvailableUserDomains) == 0 {
		return nil, errors.New("describeServer: no handle domain")
	}
	accts := make([]*account, f.writers)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	next := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range next {
				handle := seedHandle(f.prefix, i*f.accounts/f.writers, dom.AvailableUserDomains[0])
				var a account
				if _, err := c.call(ctx, http.MethodPost, "com.atproto.server.createSession", nil,
					map[string]any{"identifier": handle, "password": f.password}, &a, reqOpts{}); err != nil {
					select {
					case errs <- fmt.Errorf("createSession %s: %w", handle, err):
					default:
					}
					continue
				}
				accts[i] = &a
			}
		})
	}
	for i := range f.writers {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	return accts, nil
}

type writeSample struct {
	start time.Time
	lat   time.Duration
}

type loadResult struct {
	samples         []writeSample
	errors, skipped int
	firstError      string
	mu              sync.Mutex
	wg              sync.WaitGroup
	inflight        chan struct{}
}

// writeLoad creates records at rate per second (open loop: a slow answer does not slow the offered load; at
// most 64 in flight) as the accounts in turn, until done says so.
func writeLoad(base string, accts []*account, rate float64, done func() bool) *loadResult {
	c := newClient(base, 64)
	defer c.closeIdle()
	res := &loadResult{inflight: make(chan struct{}, 64)}
	t := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer t.Stop()
	for i := 0; !done(); i++ {
		<-t.C
		select {
		case res.inflight <- struct{}{}:
		default:
			res.skipped++
			continue
		}
		a := accts[i%len(accts)]
		res.wg.Go(func() {
			defer func() { <-res.inflight }()
			start := time.Now()
			_, err := c.createRecord(context.Background(), a, "backup load "+strconv.Itoa(i))
			lat := time.Since(start)
			res.mu.Lock()
			defer res.mu.Unlock()
			if err != nil {
				res.errors++
				if res.firstError == "" {
					res.firstError = err.Error()
				}
				return
			}
			res.samples = append(res.samples, writeSample{start, lat})
		})
	}
	res.wg.Wait()
	return res
}
