package pds_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
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
	relayBin      = flag.String("relay", "", "TestRelayIntegration: path to an indigo relay binary (scripts/relay-integration.sh builds one)")
	relayCommits  = flag.Int("relay.commits", 3000, "TestRelayIntegration: commits to write")
	relayAccounts = flag.Int("relay.accounts", 10, "TestRelayIntegration: accounts")
)

// relayFailureMarkers are the relay's log messages for events it refused or could not verify
// (cmd/relay/relay/ingest.go and verify.go).
var relayFailureMarkers = []string{
	"failed strict validation",
	"commit message failed verification",
	"miss-matching prevData",
	"miss-matching since",
	"failed to invert commit MST",
	"skipping commit signature validation",
	"dropping commit with old rev",
	"failed to load identity",
	"invalid account event",
	"invalid DID in message",
	"sync message failed",
}

// TestRelayIntegration runs indigo's relay (SQLite) against the PDS on loopback: the relay subscribes to the
// PDS's firehose, the test creates accounts and writes a few thousand mixed commits, and then the relay's log
// must hold no verification failure, its own firehose must carry every commit, and its getLatestCommit,
// getRepoStatus and listRepos must agree with the PDS. It needs -relay=<binary>: see
// scripts/relay-integration.sh and docs/firehose.md.
func TestRelayIntegration(t *testing.T) {
	if *relayBin == "" {
		t.Skip("needs -relay=<indigo relay binary>: run scripts/relay-integration.sh")
	}
	plcURL := testplc.Start(t)
	relayAddr := freeAddr(t)
	relayURL := "http://" + relayAddr
	// The PDS also asks the relay to crawl it (PDS_CRAWLERS); the relay refuses localhost on its public
	// endpoint, so the test adds the host through the admin endpoint as well.
	p := testpds.Start(t, testpds.Options{PLCURL: plcURL, Env: map[string]string{"PDS_CRAWLERS": relayURL}})
	pdsHost := strings.TrimPrefix(p.URL, "http://") // localhost:PORT: the origin in the DID documents

	dir := t.TempDir()
	logPath := filepath.Join(dir, "relay.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(*relayBin, "serve")
	cmd.Env = append(os.Environ(),
		"DATABASE_URL=sqlite://"+filepath.Join(dir, "relay.sqlite"),
		"RELAY_API_BIND="+relayAddr,
		"RELAY_METRICS_LISTEN="+freeAddr(t),
		"RELAY_PERSIST_DIR="+filepath.Join(dir, "persist"),
		"RELAY_ALLOW_INSECURE_HOSTS=true",
		"RELAY_PLC_HOST="+plcURL,
		"RELAY_ADMIN_PASSWORD=relay-admin",
		"RELAY_TRUSTED_DOMAINS="+pdsHost, // trusted: no per-host rate limits in the way
		"RELAY_LOG_LEVEL=info",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		testpds.StopProcess(cmd)
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("relay log (last 8 KB):\n%s", tail(b, 8<<10))
			}
		}
	})
	hc := &http.Client{Timeout: 30 * time.Second}
	testpds.WaitUntil(t, 60*time.Second, "relay health", func() bool {
		resp, err := hc.Get(relayURL + "/xrpc/_health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	// Admin requestCrawl: the relay checks describeServer, then subscribes to the PDS.
	body, _ := json.Marshal(map[string]string{"hostname": pdsHost})
	req, _ := http.NewRequest(http.MethodPost, relayURL+"/admin/pds/requestCrawl", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("admin", "relay-admin")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("relay requestCrawl: %d %s", resp.StatusCode, msg)
	}
	testpds.WaitUntil(t, 30*time.Second, "relay subscribed to the PDS", func() bool { return p.Server.FirehoseSubscribers() >= 1 })

	// A consumer of the relay's own firehose counts the commits that passed the relay's checks.
	relayWS := "ws://" + relayAddr + "/xrpc/com.atproto.sync.subscribeRepos"
	rconn, _, err := websocket.DefaultDialer.Dial(relayWS, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rconn.Close()
	var relayed atomic.Int64
	go func() {
		for {
			_, raw, err := rconn.ReadMessage()
			if err != nil {
				return
			}
			if f, err := testpds.DecodeFrame(raw); err == nil && f.Commit != nil {
				relayed.Add(1)
			}
		}
	}()

	start := time.Now()
	accts := make([]*testpds.Account, *relayAccounts)
	for i := range accts {
		accts[i] = p.CreateAccount(fmt.Sprintf("relay%d", i))
	}
	// Mixed writes from every account in parallel.
	var written atomic.Int64
	var wg sync.WaitGroup
	per := *relayCommits / len(accts)
	for i, acct := range accts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := testpds.NewWriter(t, p, acct)
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			var live []string // rkeys present
			n := 0
			for c := 0; c < per; c++ {
				switch r := rng.IntN(100); {
				case r < 55 || len(live) < 3:
					rkey := fmt.Sprintf("c%06d", n)
					n++
					w.Create(testpds.NoteCollection, rkey, testpds.Note(rkey))
					live = append(live, rkey)
				case r < 75:
					rkey := live[rng.IntN(len(live))]
					w.Put(testpds.NoteCollection, rkey, testpds.Note(fmt.Sprintf("%s edited %d", rkey, c)))
				case r < 88:
					j := rng.IntN(len(live))
					w.Delete(testpds.NoteCollection, live[j])
					live = append(live[:j], live[j+1:]...)
				default:
					// applyWrites: a few creates, an update and a delete in one commit.
					var ops []string
					for range 1 + rng.IntN(5) {
						rkey := fmt.Sprintf("c%06d", n)
						n++
						ops = append(ops, "create "+testpds.NoteCollection+"/"+rkey)
						live = append(live, rkey)
					}
					ops = append(ops, "update "+testpds.NoteCollection+"/"+live[0])
					j := 1 + rng.IntN(len(live)-1)
					if !strings.Contains(strings.Join(ops, " "), live[j]) {
						ops = append(ops, "delete "+testpds.NoteCollection+"/"+live[j])
						live = append(live[:j], live[j+1:]...)
					}
					w.Apply(testpds.Note("batch"), ops...)
				}
				written.Add(1)
			}
		}()
	}
	wg.Wait()
	totalCommits := written.Load() + int64(len(accts)) // + each account's genesis commit
	t.Logf("wrote %d commits from %d accounts in %v", written.Load(), len(accts), time.Since(start).Round(time.Millisecond))

	// The relay catches up: its view of every account equals the PDS's.
	relayGet := func(nsid string, params url.Values) map[string]any {
		resp, err := hc.Get(relayURL + "/xrpc/" + nsid + "?" + params.Encode())
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var m map[string]any
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&m) != nil {
			return nil
		}
		return m
	}
	pdsLatest := map[string]map[string]any{}
	for _, a := range accts {
		r := p.Query("com.atproto.sync.getLatestCommit", url.Values{"did": {a.DID}}, "")
		if r.Status != 200 {
			t.Fatalf("PDS getLatestCommit: %s", r)
		}
		pdsLatest[a.DID] = r.JSON()
	}
	testpds.WaitUntil(t, 3*time.Minute, "relay caught up with every account", func() bool {
		for _, a := range accts {
			m := relayGet("com.atproto.sync.getLatestCommit", url.Values{"did": {a.DID}})
			if m == nil || m["rev"] != pdsLatest[a.DID]["rev"] || m["cid"] != pdsLatest[a.DID]["cid"] {
				return false
			}
		}
		return true
	})
	for _, a := range accts {
		m := relayGet("com.atproto.sync.getRepoStatus", url.Values{"did": {a.DID}})
		if m == nil || m["active"] != true || m["rev"] != pdsLatest[a.DID]["rev"] {
			t.Errorf("relay getRepoStatus %s: %v, PDS rev %v", a.Handle, m, pdsLatest[a.DID]["rev"])
		}
	}
	// listRepos: every account, with the PDS's head and rev.
	relayRepos := map[string]map[string]any{}
	cursor := ""
	for {
		params := url.Values{"limit": {"1000"}}
		if cursor != "" {
			params.Set("cursor", cursor)
		}
		m := relayGet("com.atproto.sync.listRepos", params)
		if m == nil {
			t.Fatal("relay listRepos failed")
		}
		repos, _ := m["repos"].([]any)
		for _, r := range repos {
			rm := r.(map[string]any)
			relayRepos[rm["did"].(string)] = rm
		}
		cursor, _ = m["cursor"].(string)
		if cursor == "" || len(repos) == 0 {
			break
		}
	}
	pdsRepos := p.Query("com.atproto.sync.listRepos", url.Values{"limit": {"1000"}}, "").JSON()["repos"].([]any)
	if len(pdsRepos) != len(accts) {
		t.Fatalf("PDS lists %d repos", len(pdsRepos))
	}
	for _, r := range pdsRepos {
		pm := r.(map[string]any)
		rm := relayRepos[pm["did"].(string)]
		if rm == nil || rm["head"] != pm["head"] || rm["rev"] != pm["rev"] {
			t.Errorf("listRepos %s: relay %v, PDS %v", pm["did"], rm, pm)
		}
	}
	// The relay re-broadcast every commit.
	testpds.WaitUntil(t, 30*time.Second, "relay firehose carried every commit", func() bool { return relayed.Load() >= totalCommits })
	if n := relayed.Load(); n != totalCommits {
		t.Errorf("relay firehose carried %d commits, want %d", n, totalCommits)
	}

	// No verification failure in the relay's log.
	logs, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	failures, warnings := 0, 0
	for _, line := range strings.Split(string(logs), "\n") {
		if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
			if warnings++; warnings <= 5 {
				t.Logf("relay log: %s", line)
			}
		}
		for _, m := range relayFailureMarkers {
			if strings.Contains(line, m) {
				failures++
				if failures <= 10 {
					t.Errorf("relay: %s", line)
				}
			}
		}
	}
	t.Logf("relay: %d commits relayed, %d verification failures, %d warnings/errors in %d log lines; took %v",
		relayed.Load(), failures, warnings, strings.Count(string(logs), "\n"), time.Since(start).Round(time.Millisecond))
	if failures > 0 {
		t.Fatalf("%d verification failures in the relay's log", failures)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
