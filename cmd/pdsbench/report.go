package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// figure is one row of the comparison table: a number taken from each run's output.
type figure struct {
	Label  string
	Unit   string
	Higher bool // higher is better
	Target string
	Value  func(o *Output) (float64, bool)
	// Detail, when set, adds latency or context to a cell (from the run with the median value).
	Detail func(o *Output) string
}

func scenario(o *Output, name string) *Result {
	for _, r := range o.Scenarios {
		if r.Name == name {
			return r
		}
	}
	return nil
}

func rateOf(name string) func(o *Output) (float64, bool) {
	return func(o *Output) (float64, bool) {
		r := scenario(o, name)
		if r == nil || r.Ops == 0 {
			return 0, false
		}
		return r.Rate, true
	}
}

// memoryMB is a server memory figure in MB; absent without -pid or when never sampled.
func memoryMB(kb func(*Server) int64) func(o *Output) (float64, bool) {
	return func(o *Output) (float64, bool) {
		if o.Server == nil || kb(o.Server) == 0 {
			return 0, false
		}
		return float64(kb(o.Server)) / 1024, true
	}
}

func latencyOf(name string) func(o *Output) string {
	return func(o *Output) string {
		r := scenario(o, name)
		if r == nil {
			return ""
		}
		return fmt.Sprintf("p50 %s / p99 %s ms", num(r.Latency.P50), num(r.Latency.P99))
	}
}

func figures(cfg Config) []figure {
	n, subscribers := fmt.Sprint(cfg.Clients), cfg.Subscribers
	return []figure{
		{Label: "createRecord, 1 client", Unit: "/s", Higher: true, Target: ">= 15x",
			Value: rateOf(scCreate1), Detail: latencyOf(scCreate1)},
		{Label: "createRecord, " + n + " clients on " + n + " accounts", Unit: "/s", Higher: true, Target: ">= 40x",
			Value: rateOf(scCreateN), Detail: latencyOf(scCreateN)},
		{Label: "createRecord, " + n + " clients on 1 account", Unit: "/s", Higher: true, Target: ">= 10x",
			Value: rateOf(scCreateNOne), Detail: latencyOf(scCreateNOne)},
		{Label: "getRecord, 1 client", Unit: "/s", Higher: true,
			Value: rateOf(scGetRecord1), Detail: latencyOf(scGetRecord1)},
		{Label: "getRecord, " + n + " clients", Unit: "/s", Higher: true, Target: ">= 20x",
			Value: rateOf(scGetRecordN), Detail: latencyOf(scGetRecordN)},
		{Label: fmt.Sprintf("listRecords (%d per page), %s clients", cfg.ListLimit, n), Unit: " pages/s", Higher: true,
			Value: rateOf(scListRecordsN), Detail: latencyOf(scListRecordsN)},
		{Label: fmt.Sprintf("sync.getRepo, %s records (p50)", thousands(cfg.RepoRecords)), Unit: " ms", Target: "<= 1/20",
			Value: func(o *Output) (float64, bool) {
				r := scenario(o, scGetRepo)
				if r == nil || r.Ops == 0 {
					return 0, false
				}
				return r.Latency.P50, true
			},
			Detail: func(o *Output) string {
				if r := scenario(o, scGetRepo); r != nil {
					return fmt.Sprintf("%s KB", num(float64(r.Bytes)/1024))
				}
				return ""
			}},
		{Label: "server CPU per createRecord (1 client)", Unit: " ms",
			Value: func(o *Output) (float64, bool) {
				r := scenario(o, scCreate1)
				if r == nil || r.ServerCPUPerOpMS == 0 {
					return 0, false
				}
				return r.ServerCPUPerOpMS, true
			}},
		{Label: "RSS idle", Unit: " MB", Target: "<= 1/10",
			Value: memoryMB(func(s *Server) int64 { return s.IdleRSSKB })},
		{Label: "RSS idle: anonymous (the process's own memory; the rest is mapped program files)", Unit: " MB",
			Value: memoryMB(func(s *Server) int64 { return s.IdleAnonKB }),
			Detail: func(o *Output) string {
				if o.Server == nil || o.Server.IdleFileKB == 0 {
					return ""
				}
				return fmt.Sprintf("files %s MB", num(float64(o.Server.IdleFileKB)/1024))
			}},
		{Label: "RSS at the end of the load run", Unit: " MB",
			Value: memoryMB(func(s *Server) int64 { return s.AfterRSSKB }),
			Detail: func(o *Output) string {
				if o.Server == nil {
					return ""
				}
				return fmt.Sprintf("peak %s MB", num(float64(o.Server.PeakRSSKB)/1024))
			}},
		{Label: "RSS after the load run (left alone for -rss-settle)", Unit: " MB", Target: "<= 1/10",
			Value: memoryMB(func(s *Server) int64 { return s.SettledRSSKB })},
		{Label: fmt.Sprintf("firehose, %d subscribers: writes (%s clients)", subscribers, n), Unit: "/s", Higher: true,
			Value: rateOf(scFirehose)},
		{Label: fmt.Sprintf("firehose, %d subscribers: frames delivered", subscribers), Unit: "/s", Higher: true,
			Value: func(o *Output) (float64, bool) {
				r := scenario(o, scFirehose)
				if r == nil || r.Firehose == nil {
					return 0, false
				}
				return r.Firehose.DeliveredPerSec, true
			},
			Detail: func(o *Output) string {
				r := scenario(o, scFirehose)
				if r == nil || r.Firehose == nil {
					return ""
				}
				return fmt.Sprintf("missing %d, disconnects %d", r.Firehose.Missing, r.Firehose.Disconnects)
			}},
		{Label: fmt.Sprintf("firehose, %d subscribers: p99 delay, request sent to frame received", subscribers), Unit: " ms",
			Target: "< 250 ms",
			Value: func(o *Output) (float64, bool) {
				r := scenario(o, scFirehose)
				if r == nil || r.Firehose == nil || r.Firehose.DelayFromSend.N == 0 {
					return 0, false
				}
				return r.Firehose.DelayFromSend.P99, true
			},
			Detail: func(o *Output) string {
				r := scenario(o, scFirehose)
				if r == nil || r.Firehose == nil {
					return ""
				}
				return fmt.Sprintf("p50 %s ms", num(r.Firehose.DelayFromSend.P50))
			}},
	}
}

// thousands formats 2000 as "2,000".
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// cell is the median of a figure over runs, with the detail of the median run.
type cell struct {
	Median float64
	Runs   int
	Detail string
	OK     bool
}

func medianCell(f figure, runs []*Output) cell {
	type pt struct {
		v float64
		o *Output
	}
	var pts []pt
	for _, o := range runs {
		if v, ok := f.Value(o); ok {
			pts = append(pts, pt{v, o})
		}
	}
	if len(pts) == 0 {
		return cell{}
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i].v < pts[j].v })
	c := cell{Runs: len(pts), OK: true}
	m := len(pts) / 2
	if len(pts)%2 == 1 {
		c.Median = pts[m].v
	} else {
		c.Median = (pts[m-1].v + pts[m].v) / 2
	}
	if f.Detail != nil {
		c.Detail = f.Detail(pts[m].o)
	}
	return c
}

// num formats a figure with about three significant digits.
func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func (c cell) String(unit string) string {
	if !c.OK {
		return "–"
	}
	s := num(c.Median) + unit
	if c.Detail != "" {
		s += " (" + c.Detail + ")"
	}
	return s
}

// advantage is how many times better ours is (>1 = better), whatever the direction of the figure.
func advantage(f figure, ours, ref cell) string {
	if !ours.OK || !ref.OK || ours.Median == 0 || ref.Median == 0 {
		return "–"
	}
	x := ours.Median / ref.Median
	if !f.Higher {
		x = ref.Median / ours.Median
	}
	return num(x) + "x"
}

// writeTable renders the comparison as markdown.
func writeTable(w io.Writer, oursName, refName string, ours, ref []*Output) {
	all := append(append([]*Output{}, ours...), ref...)
	cfg := Config{Clients: 8, RepoRecords: 2000, ListLimit: 100}
	if len(all) > 0 {
		cfg = all[0].Config
	}
	fmt.Fprintf(w, "| figure | %s | %s | %s vs %s (>1 = %s better) | target |\n", oursName, refName, oursName, refName, oursName)
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, f := range figures(cfg) {
		o, r := medianCell(f, ours), medianCell(f, ref)
		if !o.OK && !r.OK {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", f.Label, o.String(f.Unit), r.String(f.Unit), advantage(f, o, r), f.Target)
	}
	fmt.Fprintln(w)
	if len(all) > 0 {
		m := all[0].Machine
		lo, hi := m.LoadStart, m.LoadStart
		for _, o := range all {
			lo = min(lo, o.Machine.LoadStart, o.Machine.LoadEnd)
			hi = max(hi, o.Machine.LoadStart, o.Machine.LoadEnd)
		}
		fmt.Fprintf(w, "Medians of %d run(s) of %s and %d of %s, %s. Machine: %d × %s, %d MB, Linux %s; 1-minute load "+
			"average %.1f–%.1f during the runs (shared machine). Each scenario ran for %s (at most %d operations) after "+
			"%d warm-up operations; the firehose wrote for %s.\n",
			len(ours), oursName, len(ref), refName, all[0].Started.Format("2006-01-02"), m.CPUs, m.CPUModel, m.MemoryMB, m.Kernel,
			lo, hi, cfg.Duration, cfg.Count, cfg.Warmup, cfg.FirehoseDuration)
	}
}

func readOutputs(paths []string) ([]*Output, error) {
	var outs []*Output
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var o Output
		if err := json.Unmarshal(b, &o); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		outs = append(outs, &o)
	}
	return outs, nil
}

func reportMain(args []string) error {
	fs := flag.NewFlagSet("pdsbench report", flag.ContinueOnError)
	md := fs.String("md", "", "also write the markdown table to this file")
	oursName := fs.String("ours", "pdsgo", "target name of this PDS in the results")
	refName := fs.String("ref", "reference", "target name of the reference PDS in the results")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("usage: pdsbench report [-md file] [-ours name] [-ref name] result.json...")
	}
	outs, err := readOutputs(fs.Args())
	if err != nil {
		return err
	}
	var ours, ref []*Output
	for _, o := range outs {
		switch o.Target.Name {
		case *oursName:
			ours = append(ours, o)
		case *refName:
			ref = append(ref, o)
		}
	}
	if len(ours)+len(ref) == 0 {
		return fmt.Errorf("no results named %q or %q", *oursName, *refName)
	}
	var sb strings.Builder
	writeTable(&sb, *oursName, *refName, ours, ref)
	fmt.Print(sb.String())
	if *md != "" {
		return os.WriteFile(*md, []byte(sb.String()), 0o644)
	}
	return nil
}
