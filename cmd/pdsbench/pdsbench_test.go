package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	lexutil "github.com/bluesky-social/indigo/lex/util"
	"github.com/ipfs/go-cid"

	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/pds/sequencer"
)

func TestScanFrameReadsWhatTheSequencerWrites(t *testing.T) {
	c, err := cid.Decode("bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm")
	if err != nil {
		t.Fatal(err)
	}
	evt := &comatproto.SyncSubscribeRepos_Commit{
		Repo: "did:plc:ewvi7nxzyoun6zhxrhs64oiz", Rev: "3lbenchrev2222", Seq: 70000, Commit: lexutil.LexLink(c),
		Blocks: bytes.Repeat([]byte{0xff}, 3000), Time: "2026-11-26T00:00:01.250Z", Blobs: []lexutil.LexLink{},
		Ops: []*comatproto.SyncSubscribeRepos_RepoOp{{Action: "create", Path: "app.bsky.feed.post/3lbenchrkey22", Cid: (*lexutil.LexLink)(&c)}},
	}
	frame, err := sequencer.EncodeFrame(sequencer.TypeCommit, evt)
	if err != nil {
		t.Fatal(err)
	}
	f, err := scanFrame(frame)
	if err != nil {
		t.Fatal(err)
	}
	if f.Op != 1 || f.Type != "#commit" || f.Seq != 70000 || f.Time != evt.Time {
		t.Fatalf("scanned %+v", f)
	}
	var back comatproto.SyncSubscribeRepos_Commit
	if err := back.UnmarshalCBOR(bytes.NewReader(frame[f.Body:])); err != nil || back.Ops[0].Path != evt.Ops[0].Path {
		t.Fatalf("body offset %d: %v", f.Body, err)
	}

	ef, err := scanFrame(sequencer.EncodeErrorFrame("ConsumerTooSlow", "too slow"))
	if err != nil || ef.Op != -1 {
		t.Fatalf("error frame: %+v %v", ef, err)
	}
	for n := range len(frame) - 1 {
		if _, err := scanFrame(frame[:n]); err == nil {
			t.Fatalf("truncated frame (%d of %d bytes) scanned without error", n, len(frame))
		}
	}
}

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	s := summarize(d)
	if s.N != 100 || s.P50 != 50 || s.P90 != 90 || s.P99 != 99 || s.Max != 100 || s.Mean != 50.5 {
		t.Fatalf("summary %+v", s)
	}
	if s := summarize(nil); s.N != 0 || s.P99 != 0 {
		t.Fatalf("empty summary %+v", s)
	}
}

func TestParseStatCPU(t *testing.T) {
	// comm with spaces and a ')' inside; utime 250 + stime 150 ticks.
	line := "1234 (my (odd) proc) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 150 0 0 20 0 12 0 100 2000000 5000"
	got, err := parseStatCPU([]byte(line))
	if err != nil || got != 4.0 {
		t.Fatalf("cpu %v %v", got, err)
	}
	st, err := readProc(os.Getpid())
	if err != nil || st.RSSKB <= 0 || st.PeakRSSKB < st.RSSKB || st.Threads < 1 {
		t.Fatalf("own /proc stats %+v %v", st, err)
	}
	// RSS is RssAnon + RssFile + RssShmem: the two parts are read and add up to no more than the whole.
	if st.AnonKB <= 0 || st.FileKB <= 0 || st.AnonKB+st.FileKB > st.RSSKB {
		t.Fatalf("own RSS split: anon %d + file %d KB of %d KB", st.AnonKB, st.FileKB, st.RSSKB)
	}
}

func TestOnlyLoopbackTargets(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:2583", "http://localhost:2583", "http://[::1]:80", "http://127.9.9.9"} {
		if _, err := checkLoopback(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://10.0.0.1:2583", "http://example.com", "https://8.8.8.8", "ftp://127.0.0.1", "http://192.168.1.1"} {
		if _, err := checkLoopback(bad); !errors.Is(err, errNotLoopback) && err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if err := benchMain([]string{"-url", "http://10.1.2.3:2583"}); !errors.Is(err, errNotLoopback) {
		t.Fatalf("benchMain with a private address: %v", err)
	}
}

func TestReportMediansAndRatios(t *testing.T) {
	mk := func(name string, rate, getRepo float64, idleKB int64) *Output {
		return &Output{Target: Target{Name: name}, Config: Config{Clients: 8, Subscribers: 10, RepoRecords: 2000, ListLimit: 100},
			Server: &Server{IdleRSSKB: idleKB, IdleAnonKB: idleKB / 4, IdleFileKB: idleKB - idleKB/4, AfterRSSKB: idleKB * 3, SettledRSSKB: idleKB * 2},
			Scenarios: []*Result{
				{Name: scCreate1, Ops: 10, Rate: rate},
				{Name: scGetRepo, Ops: 5, Latency: Dist{P50: getRepo}},
			}}
	}
	ours := []*Output{mk("pdsgo", 500, 5, 20480), mk("pdsgo", 300, 9, 30720), mk("pdsgo", 400, 7, 10240)}
	ref := []*Output{mk("reference", 20, 280, 204800), mk("reference", 25, 300, 204800), mk("reference", 15, 260, 204800)}
	var sb strings.Builder
	writeTable(&sb, "pdsgo", "reference", ours, ref)
	table := sb.String()
	for _, want := range []string{
		"| createRecord, 1 client | 400/s", // median of 300, 400, 500
		"| 20.0/s",                         // median of 15, 20, 25
		"| 20.0x |",                        // 400 / 20
		"| sync.getRepo, 2,000 records (p50) | 7.00 ms",
		"| 40.0x |", // 280 / 7: lower is better
		"| RSS idle | 20.0 MB | 200 MB | 10.0x |",
		"| RSS idle: anonymous (the process's own memory; the rest is mapped program files) | 5.00 MB (files 15.0 MB) | 50.0 MB (files 150 MB) | 10.0x |",
		"| RSS at the end of the load run | 60.0 MB",
		"| RSS after the load run (left alone for -rss-settle) | 40.0 MB | 400 MB | 10.0x |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, "getRecord") {
		t.Errorf("table shows a figure no run measured:\n%s", table)
	}
}

// TestBenchAgainstOurServer runs every scenario, briefly, against a real server.
func TestBenchAgainstOurServer(t *testing.T) {
	p := testpds.Start(t, testpds.Options{})
	u, _ := url.Parse(p.URL)
	f := &benchFlags{url: "http://127.0.0.1:" + u.Port(), name: "pdsgo", pid: os.Getpid(), cfg: Config{
		Clients: 2, Duration: 300 * time.Millisecond, Count: 40, Warmup: 2, RepoRecords: 250, GetRepoCount: 3, ListLimit: 100,
		Subscribers: 3, FirehoseDuration: 300 * time.Millisecond, Settle: 5 * time.Second, RSSSettle: 50 * time.Millisecond,
		Scenarios: strings.Split(allScenarioList, ","),
	}}
	out, err := bench(context.Background(), f, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Scenarios) != len(f.cfg.Scenarios) || out.Target.HandleDomain != ".test" || out.Server.IdleRSSKB <= 0 ||
		out.Server.SettledRSSKB <= 0 {
		t.Fatalf("output %+v", out)
	}
	for _, r := range out.Scenarios {
		if r.Ops == 0 || r.Errors != 0 || r.Rate <= 0 || r.Latency.P50 <= 0 || r.Latency.P99 < r.Latency.P50 {
			t.Errorf("%s: %+v", r.Name, r)
		}
	}
	if r := scenario(out, scGetRepo); r.Bytes < 250*50 {
		t.Errorf("getRepo read %d bytes for 250 records", r.Bytes)
	}
	fh := scenario(out, scFirehose).Firehose
	if fh.Connected != 3 || fh.Missing != 0 || fh.Disconnects != 0 || fh.Commits < int64(3*fh.WritesAcked) ||
		fh.DelayFromSend.N != 3*fh.WritesAcked || fh.DelayFromSend.P50 <= 0 {
		t.Errorf("firehose %+v", fh)
	}
}
