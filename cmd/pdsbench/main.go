// Command pdsbench is a load tool for any PDS on this machine (this one or the reference @atproto/pds).
//
//	pdsbench -url http://127.0.0.1:2583 [-pid PID] [-name pdsgo] [-out result.json] [flags]
//	pdsbench -url ... -login HANDLE:PASSWORD -scenarios create_1  write as an existing account (a seeded one)
//	pdsbench report [-md table.md] [-ours pdsgo] [-ref reference] result.json...
//	pdsbench seed -data DIR [-accounts 100000]     accounts written straight into a data directory (seed.go)
//	pdsbench seed -data DIR -records 1000000       ... and a repository of that many records (records.go)
//	pdsbench startup -bin pds -data DIR [-runs 5]  start-up time, open files and RSS with that directory
//	pdsbench backup -bin pds -data DIR -accounts N createRecord latency with and during backup rounds
//
// It creates accounts (handle domain from describeServer), then runs, each bounded by -duration and -count:
// createRecord from 1 client, from N clients on N accounts and from N clients on one account; getRecord (1 and N
// clients) and listRecords on a repo of -repo-records records; sync.getRepo of that repo; and createRecord from
// N clients while -subscribers firehose subscribers measure delivery. With -pid it samples the server's RSS and
// CPU from /proc; with -pprof it saves a CPU profile of the server for each scenario. With -login it creates
// no accounts: it logs in as that one, times its first createRecord (cold, when the server just started) and
// runs the createRecord scenarios that need one account. Only loopback targets.
// See docs/performance.md.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"time"
)

// Scenario names (the keys the report reads).
const (
	scCreate1       = "create_1"
	scCreateN       = "create_n_accounts"
	scCreateNOne    = "create_n_one_account"
	scGetRecord1    = "getRecord_1"
	scGetRecordN    = "getRecord_n"
	scListRecordsN  = "listRecords_n"
	scGetRepo       = "getRepo"
	scFirehose      = "firehose"
	allScenarioList = scCreate1 + "," + scCreateN + "," + scCreateNOne + "," + scGetRecord1 + "," + scGetRecordN + "," +
		scListRecordsN + "," + scGetRepo + "," + scFirehose
	// With -login only these run: they write to one account.
	loginScenarios = scCreate1 + "," + scCreateNOne
)

// Config is what the run was asked to do (recorded in the JSON).
type Config struct {
	Clients          int           `json:"clients"`
	Duration         time.Duration `json:"duration_ns"`
	Count            int           `json:"count"`
	Warmup           int           `json:"warmup"`
	RepoRecords      int           `json:"repo_records"`
	GetRepoCount     int           `json:"getrepo_count"`
	ListLimit        int           `json:"list_limit"`
	Subscribers      int           `json:"subscribers"`
	FirehoseDuration time.Duration `json:"firehose_duration_ns"`
	Settle           time.Duration `json:"settle_ns"`
	RSSSettle        time.Duration `json:"rss_settle_ns"`
	Scenarios        []string      `json:"scenarios"`
}

// Output is the JSON the tool writes.
type Output struct {
	Tool      string    `json:"tool"`
	Target    Target    `json:"target"`
	Machine   Machine   `json:"machine"`
	Started   time.Time `json:"started"`
	Config    Config    `json:"config"`
	Server    *Server   `json:"server,omitempty"`
	Setup     Setup     `json:"setup"`
	Scenarios []*Result `json:"scenarios"`
}

type Target struct {
	Name         string `json:"name"`
	URL          string `json:"url"`
	PID          int    `json:"pid,omitempty"`
	ServiceDID   string `json:"service_did"`
	HandleDomain string `json:"handle_domain"`
}

type Machine struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model"`
	Kernel   string `json:"kernel"`
	MemoryMB int64  `json:"memory_mb"`
	// 1-minute load averages at the start and end of the run: other work on a shared machine skews the figures.
	LoadStart float64 `json:"load_avg_start"`
	LoadEnd   float64 `json:"load_avg_end"`
}

// Server is the server process's memory and CPU over the run.
type Server struct {
	IdleRSSKB int64 `json:"idle_rss_kb"` // at the start, before any load
	// IdleRSS split in two (Linux RssAnon, RssFile): the process's own memory, and the pages of the program's
	// files (its binary, libraries) the kernel has mapped, which other processes share and memory pressure
	// takes back.
	IdleAnonKB int64 `json:"idle_rss_anon_kb,omitempty"`
	IdleFileKB int64 `json:"idle_rss_file_kb,omitempty"`
	AfterRSSKB int64 `json:"after_rss_kb"` // at the end of the run
	// SettledRSSKB is RSS once the run is over and the server has been left alone for Config.RSSSettle: what
	// an operator sees after a burst (a runtime that frees memory lazily shows it here, not at the end).
	SettledRSSKB    int64   `json:"settled_rss_kb,omitempty"`
	PeakRSSKB       int64   `json:"peak_rss_kb"` // VmHWM at the end
	IdleThreads     int64   `json:"idle_threads"`
	CPUSecondsTotal float64 `json:"cpu_seconds_total"` // during the run
}

type Setup struct {
	Accounts         int     `json:"accounts"`
	AccountsSeconds  float64 `json:"accounts_seconds"`
	RepoBuildSeconds float64 `json:"repo_build_seconds"`
	// With -login: the account, and its first createRecord (before any warm-up: on a server that just started,
	// the write that opens the repository).
	Login        string  `json:"login,omitempty"`
	LoginDID     string  `json:"login_did,omitempty"`
	FirstWriteMS float64 `json:"first_write_ms,omitempty"`
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "report" {
		if err := reportMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "pdsbench report:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && manyAccountsCommands[os.Args[1]] != nil { // seed, startup (manyaccounts.go)
		if err := manyAccountsCommands[os.Args[1]](os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "pdsbench %s: %v\n", os.Args[1], err)
			os.Exit(1)
		}
		return
	}
	if err := benchMain(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "pdsbench:", err)
		os.Exit(1)
	}
}

type benchFlags struct {
	url, name, out, invite, adminPass, prefix, scenarios, pprofURL, pprofDir string
	login, selfProfile                                                       string
	pid                                                                      int
	timeout                                                                  time.Duration
	cfg                                                                      Config
}

func benchMain(args []string) error {
	fs := flag.NewFlagSet("pdsbench", flag.ContinueOnError)
	var f benchFlags
	fs.StringVar(&f.url, "url", "", "PDS base URL, loopback only (e.g. http://127.0.0.1:2583)")
	fs.StringVar(&f.name, "name", "pds", "label of the target in the results")
	fs.IntVar(&f.pid, "pid", 0, "server process ID: sample its RSS and CPU from /proc")
	fs.StringVar(&f.out, "out", "", "write the JSON results to this file (default stdout)")
	fs.StringVar(&f.invite, "invite-code", "", "invite code for createAccount (needs enough uses)")
	fs.StringVar(&f.adminPass, "admin-password", "", "admin password: create an invite code when the server requires one")
	fs.StringVar(&f.prefix, "prefix", "", "handle prefix (default random)")
	fs.StringVar(&f.scenarios, "scenarios", allScenarioList, "comma-separated scenarios to run")
	fs.StringVar(&f.login, "login", "", "HANDLE:PASSWORD: write as this existing account instead of creating accounts (scenarios "+loginScenarios+" only)")
	fs.StringVar(&f.pprofURL, "pprof", "", "server's net/http/pprof base URL (loopback): save a CPU profile per scenario")
	fs.StringVar(&f.pprofDir, "pprof-dir", ".", "directory for the CPU profiles (<name>-<scenario>.pprof)")
	fs.StringVar(&f.selfProfile, "self-cpuprofile", "", "write a CPU profile of the tool itself (the whole run) to this file")
	fs.DurationVar(&f.timeout, "timeout", 20*time.Minute, "hard limit on the whole run")
	fs.IntVar(&f.cfg.Clients, "clients", 8, "concurrent clients (and accounts) of the concurrent scenarios")
	fs.DurationVar(&f.cfg.Duration, "duration", 10*time.Second, "length of each scenario")
	fs.IntVar(&f.cfg.Count, "count", 200000, "most operations per scenario")
	fs.IntVar(&f.cfg.Warmup, "warmup", 20, "unmeasured operations before each scenario")
	fs.IntVar(&f.cfg.RepoRecords, "repo-records", 2000, "records in the read repo (getRecord, listRecords, getRepo)")
	fs.IntVar(&f.cfg.GetRepoCount, "getrepo-count", 20, "most sync.getRepo calls")
	fs.IntVar(&f.cfg.ListLimit, "list-limit", 100, "listRecords page size")
	fs.IntVar(&f.cfg.Subscribers, "subscribers", 1000, "firehose subscribers")
	fs.DurationVar(&f.cfg.FirehoseDuration, "firehose-duration", 10*time.Second, "length of the firehose write phase")
	fs.DurationVar(&f.cfg.Settle, "settle", 15*time.Second, "longest wait for subscribers to catch up after the writes")
	fs.DurationVar(&f.cfg.RSSSettle, "rss-settle", 5*time.Second, "with -pid: after the run, leave the server alone this long and read its RSS again (0: do not)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if f.url == "" {
		return errors.New("-url is required")
	}
	if _, err := checkLoopback(f.url); err != nil {
		return err
	}
	if f.pprofURL != "" {
		if _, err := checkLoopback(f.pprofURL); err != nil {
			return fmt.Errorf("-pprof: %w", err)
		}
	}
	if f.cfg.Clients < 1 || f.cfg.Duration <= 0 || f.cfg.Count < 1 {
		return errors.New("-clients, -duration and -count must be positive")
	}
	f.cfg.Scenarios = strings.Split(f.scenarios, ",")
	known := map[string]bool{}
	for _, s := range strings.Split(allScenarioList, ",") {
		known[s] = true
	}
	for _, s := range f.cfg.Scenarios {
		if !known[s] {
			return fmt.Errorf("unknown scenario %q (known: %s)", s, allScenarioList)
		}
		if f.login != "" && !strings.Contains(","+loginScenarios+",", ","+s+",") {
			return fmt.Errorf("-login: scenario %s needs accounts of its own (with -login: %s)", s, loginScenarios)
		}
	}
	if h, p, ok := strings.Cut(f.login, ":"); f.login != "" && (!ok || h == "" || p == "") {
		return errors.New("-login must be HANDLE:PASSWORD")
	}
	if f.selfProfile != "" {
		pf, err := os.Create(f.selfProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()

	out, err := bench(ctx, &f, os.Stderr)
	if err != nil {
		return err
	}
	return writeJSONResult(out, f.out)
}

// bench runs the selected scenarios against one server.
func bench(ctx context.Context, f *benchFlags, logw io.Writer) (*Output, error) {
	logf := func(format string, a ...any) { fmt.Fprintf(logw, "[%s] "+format+"\n", append([]any{f.name}, a...)...) }
	want := map[string]bool{}
	for _, s := range f.cfg.Scenarios {
		want[s] = true
	}
	c := newClient(f.url, f.cfg.Clients)
	out := &Output{
		Tool:    "pdsbench",
		Target:  Target{Name: f.name, URL: f.url, PID: f.pid},
		Machine: machine(),
		Started: time.Now().UTC(),
		Config:  f.cfg,
	}
	var idle procStats
	if f.pid > 0 {
		var err error
		if idle, err = readProc(f.pid); err != nil {
			return nil, fmt.Errorf("-pid %d: %w", f.pid, err)
		}
		out.Server = &Server{IdleRSSKB: idle.RSSKB, IdleAnonKB: idle.AnonKB, IdleFileKB: idle.FileKB, IdleThreads: idle.Threads}
	}
	desc, err := c.describeServer(ctx)
	if err != nil {
		return nil, fmt.Errorf("describeServer: %w", err)
	}
	if len(desc.AvailableUserDomains) == 0 {
		return nil, errors.New("describeServer lists no availableUserDomains")
	}
	domain := desc.AvailableUserDomains[0]
	out.Target.ServiceDID, out.Target.HandleDomain = desc.DID, domain

	var writers []*account
	var readAcct *account
	if f.login != "" {
		a, err := loginAndFirstWrite(ctx, c, f.login, out)
		if err != nil {
			return nil, err
		}
		logf("logged in as %s (%s); first createRecord %.2f ms", a.Handle, a.DID, out.Setup.FirstWriteMS)
		writers = []*account{a}
	} else if writers, readAcct, err = createAccounts(ctx, f, c, desc, out, logf); err != nil {
		return nil, err
	}

	var rkeys []string
	if want[scGetRecord1] || want[scGetRecordN] || want[scListRecordsN] || want[scGetRepo] {
		t0 := time.Now()
		for len(rkeys) < f.cfg.RepoRecords {
			n := min(200, f.cfg.RepoRecords-len(rkeys))
			recs := make([]map[string]any, n)
			for i := range recs {
				recs[i] = post(fmt.Sprintf("read repo record %d", len(rkeys)+i))
			}
			got, err := c.applyCreates(ctx, readAcct, recs)
			if err != nil {
				return nil, fmt.Errorf("building the read repo: %w", err)
			}
			rkeys = append(rkeys, got...)
		}
		out.Setup.RepoBuildSeconds = time.Since(t0).Seconds()
		logf("built a %d-record repo in %.1fs", len(rkeys), out.Setup.RepoBuildSeconds)
	}

	lim := limits{Duration: f.cfg.Duration, Count: f.cfg.Count}
	measure := func(name string, clients int, lim limits, warmup int, fn op) (*Result, error) {
		if warmup > 0 {
			run(ctx, name+"-warmup", clients, limits{Duration: lim.Duration, Count: warmup}, fn)
		}
		before, self := f.sample()
		prof := f.startProfile(ctx, name, lim.Duration)
		r := run(ctx, name, clients, lim, fn)
		if err := prof(); err != nil {
			logf("cpu profile %s: %v", name, err)
		}
		f.addProc(r, before, self)
		out.Scenarios = append(out.Scenarios, r)
		logf("%-22s %8.1f/s  p50 %7.2f ms  p99 %7.2f ms  errors %d %s", name, r.Rate, r.Latency.P50, r.Latency.P99, r.Errors, r.FirstError)
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
		return r, nil
	}
	createOn := func(pick func(w int) *account) op {
		return func(ctx context.Context, w, i int) error {
			_, err := c.createRecord(ctx, pick(w), fmt.Sprintf("bench post %d", i))
			return err
		}
	}
	steps := []struct {
		name string
		fn   func() error
	}{
		{scCreate1, func() error {
			_, err := measure(scCreate1, 1, lim, f.cfg.Warmup, createOn(func(int) *account { return writers[0] }))
			return err
		}},
		{scCreateN, func() error {
			r, err := measure(scCreateN, f.cfg.Clients, lim, f.cfg.Warmup, createOn(func(w int) *account { return writers[w] }))
			r.Accounts = f.cfg.Clients
			return err
		}},
		{scCreateNOne, func() error {
			r, err := measure(scCreateNOne, f.cfg.Clients, lim, f.cfg.Warmup, createOn(func(int) *account { return writers[0] }))
			r.Accounts = 1
			return err
		}},
		{scGetRecord1, func() error {
			_, err := measure(scGetRecord1, 1, lim, f.cfg.Warmup, func(ctx context.Context, w, i int) error {
				return c.getRecord(ctx, readAcct.DID, rkeys[i%len(rkeys)])
			})
			return err
		}},
		{scGetRecordN, func() error {
			_, err := measure(scGetRecordN, f.cfg.Clients, lim, f.cfg.Warmup, func(ctx context.Context, w, i int) error {
				return c.getRecord(ctx, readAcct.DID, rkeys[(i*7919)%len(rkeys)])
			})
			return err
		}},
		{scListRecordsN, func() error {
			// Each client pages through the whole collection, then starts over.
			cursors := make([]string, f.cfg.Clients)
			_, err := measure(scListRecordsN, f.cfg.Clients, lim, f.cfg.Warmup, func(ctx context.Context, w, i int) error {
				next, n, err := c.listRecords(ctx, readAcct.DID, f.cfg.ListLimit, cursors[w])
				if err == nil && n == 0 && cursors[w] == "" {
					err = errors.New("listRecords: empty first page")
				}
				cursors[w] = next
				return err
			})
			return err
		}},
		{scGetRepo, func() error {
			var mu sync.Mutex
			var total int64
			r, err := measure(scGetRepo, 1, limits{Duration: f.cfg.Duration, Count: f.cfg.GetRepoCount}, 1,
				func(ctx context.Context, w, i int) error {
					n, err := c.getRepo(ctx, readAcct.DID, io.Discard)
					mu.Lock()
					total = n
					mu.Unlock()
					return err
				})
			r.Bytes = total
			return err
		}},
		{scFirehose, func() error {
			before, self := f.sample()
			logf("firehose: connecting %d subscribers", f.cfg.Subscribers)
			prof := f.startProfile(ctx, scFirehose, f.cfg.FirehoseDuration+time.Second)
			r, err := runFirehose(ctx, c, f.url, firehoseOpts{
				Subscribers: f.cfg.Subscribers,
				Writers:     writers,
				Limits:      limits{Duration: f.cfg.FirehoseDuration, Count: f.cfg.Count},
				Settle:      f.cfg.Settle,
				MaxSamples:  5_000_000,
			})
			if perr := prof(); perr != nil {
				logf("cpu profile %s: %v", scFirehose, perr)
			}
			if err != nil {
				return err
			}
			f.addProc(r, before, self)
			out.Scenarios = append(out.Scenarios, r)
			fh := r.Firehose
			logf("%-22s %8.1f writes/s, %d/%d subscribers, %.0f frames/s delivered, delay p50 %.1f ms p99 %.1f ms, missing %d, disconnects %d %s",
				scFirehose, r.Rate, fh.Connected, fh.Subscribers, fh.DeliveredPerSec, fh.DelayFromSend.P50, fh.DelayFromSend.P99,
				fh.Missing, fh.Disconnects, fh.FirstError)
			return ctx.Err()
		}},
	}
	for _, s := range steps {
		if !want[s.name] {
			continue
		}
		if err := s.fn(); err != nil {
			return out, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	out.Machine.LoadEnd = loadAvg()
	if f.pid > 0 {
		end, err := readProc(f.pid)
		if err == nil {
			out.Server.AfterRSSKB, out.Server.PeakRSSKB = end.RSSKB, end.PeakRSSKB
			out.Server.CPUSecondsTotal = end.CPUSeconds - idle.CPUSeconds
		}
		if f.cfg.RSSSettle > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(f.cfg.RSSSettle):
				if settled, err := readProc(f.pid); err == nil {
					out.Server.SettledRSSKB = settled.RSSKB
				}
			}
		}
	}
	return out, nil
}

// createAccounts creates the run's accounts: N writers (the first is also the one-client and one-account
// target) and one read repo.
func createAccounts(ctx context.Context, f *benchFlags, c *client, desc *serverDescription, out *Output,
	logf func(string, ...any)) (writers []*account, readAcct *account, err error) {
	domain := desc.AvailableUserDomains[0]
	nAcc := f.cfg.Clients + 1
	invite := f.invite
	if desc.InviteCodeRequired && invite == "" {
		if f.adminPass == "" {
			return nil, nil, errors.New("the server requires invite codes: pass -invite-code or -admin-password")
		}
		if invite, err = c.createInviteCode(ctx, f.adminPass, nAcc); err != nil {
			return nil, nil, fmt.Errorf("createInviteCode: %w", err)
		}
	}
	prefix := f.prefix
	if prefix == "" {
		prefix = "pb" + randomBase36(5)
	}
	t0 := time.Now()
	accts := make([]*account, nAcc)
	for i := range accts {
		handle := fmt.Sprintf("%s%d%s", prefix, i, domain)
		a, err := c.createAccount(ctx, handle, fmt.Sprintf("%s%d@example.com", prefix, i), "bench-password-"+prefix, invite)
		if err != nil {
			return nil, nil, fmt.Errorf("createAccount %s: %w", handle, err)
		}
		accts[i] = a
	}
	out.Setup.Accounts = nAcc
	out.Setup.AccountsSeconds = time.Since(t0).Seconds()
	logf("created %d accounts in %.1fs", nAcc, out.Setup.AccountsSeconds)
	return accts[:f.cfg.Clients], accts[f.cfg.Clients], nil
}

// loginAndFirstWrite logs in as an existing account (-login HANDLE:PASSWORD) and times its first createRecord.
func loginAndFirstWrite(ctx context.Context, c *client, login string, out *Output) (*account, error) {
	handle, password, _ := strings.Cut(login, ":")
	var a account
	if _, err := c.call(ctx, http.MethodPost, "com.atproto.server.createSession", nil,
		map[string]any{"identifier": handle, "password": password}, &a, reqOpts{}); err != nil {
		return nil, fmt.Errorf("createSession %s: %w", handle, err)
	}
	out.Setup.Login, out.Setup.LoginDID = a.Handle, a.DID
	t0 := time.Now()
	if _, err := c.createRecord(ctx, &a, "first write after login"); err != nil {
		return nil, fmt.Errorf("first createRecord as %s: %w", handle, err)
	}
	out.Setup.FirstWriteMS = ms(time.Since(t0))
	return &a, nil
}

// sample reads the server's and the tool's own /proc stats.
func (f *benchFlags) sample() (server, self procStats) {
	if f.pid > 0 {
		server, _ = readProc(f.pid)
	}
	self, _ = readProc(os.Getpid())
	return server, self
}

// addProc fills a result's server CPU and RSS from a sample taken before it.
func (f *benchFlags) addProc(r *Result, before, self procStats) {
	if now, err := readProc(os.Getpid()); err == nil && r.Seconds > 0 {
		r.ToolCPUCores = (now.CPUSeconds - self.CPUSeconds) / r.Seconds
	}
	if f.pid <= 0 {
		return
	}
	after, err := readProc(f.pid)
	if err != nil {
		return
	}
	r.ServerCPUSeconds = after.CPUSeconds - before.CPUSeconds
	r.ServerRSSAfterKB = after.RSSKB
	if r.Seconds > 0 {
		r.ServerCPUCores = r.ServerCPUSeconds / r.Seconds
	}
	if r.Ops > 0 {
		r.ServerCPUPerOpMS = r.ServerCPUSeconds * 1000 / float64(r.Ops)
	}
}

// startProfile fetches a CPU profile of the server covering the next d (when -pprof is set); the returned
// function waits for it and saves it.
func (f *benchFlags) startProfile(ctx context.Context, scenario string, d time.Duration) func() error {
	if f.pprofURL == "" {
		return func() error { return nil }
	}
	secs := max(int((d+time.Second-1)/time.Second), 1)
	done := make(chan error, 1)
	go func() {
		u := strings.TrimRight(f.pprofURL, "/") + fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			done <- err
			return
		}
		hc := &http.Client{Transport: &http.Transport{DialContext: loopbackDialer()}, Timeout: time.Duration(secs+30) * time.Second}
		resp, err := hc.Do(req)
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			done <- fmt.Errorf("pprof answered %s", resp.Status)
			return
		}
		if err := os.MkdirAll(f.pprofDir, 0o755); err != nil {
			done <- err
			return
		}
		file, err := os.Create(filepath.Join(f.pprofDir, f.name+"-"+scenario+".pprof"))
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(file, resp.Body)
		if cerr := file.Close(); err == nil {
			err = cerr
		}
		done <- err
	}()
	return func() error { return <-done }
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), LoadStart: loadAvg()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemoryMB = kb / 1024
		}
	}
	return m
}

// loadAvg is the 1-minute load average (0 if unknown).
func loadAvg() float64 {
	var v float64
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscanf(string(b), "%f", &v)
	}
	return v
}

func randomBase36(n int) string {
	const digits = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		v, _ := rand.Int(rand.Reader, big.NewInt(int64(len(digits))))
		b[i] = digits[v.Int64()]
	}
	return string(b)
}

// writeJSONResult writes a run's result as indented JSON to path, or to stdout when path is empty.
func writeJSONResult(v any, path string) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "" {
		_, err = os.Stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
