package pds_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/internal/testplc"
	"github.com/pdsgo/pds/internal/testservice"
	"github.com/pdsgo/pds/internal/testsmtp"
)

// scrape fetches /metrics from the metrics listener over HTTP and parses it with Prometheus's text parser.
func scrape(t testing.TB, addr string) metricFamilies {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

type metricFamilies map[string]*dto.MetricFamily

// value is the sample of name whose labels include want (counter, gauge, or a histogram's count), summed
// over matching series; found is false when no series matches.
func (f metricFamilies) value(name string, want map[string]string) (v float64, found bool) {
	fam := f[name]
	if fam == nil {
		return 0, false
	}
series:
	for _, m := range fam.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for k, w := range want {
			if labels[k] != w {
				continue series
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			v += m.Counter.GetValue()
		case m.Gauge != nil:
			v += m.Gauge.GetValue()
		case m.Histogram != nil:
			v += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			v += m.Untyped.GetValue()
		}
	}
	return v, found
}

func (f metricFamilies) get(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	v, _ := f.value(name, labelMap(labels))
	return v
}

func labelMap(kv []string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// moved checks that a metric moved by exactly want between two scrapes.
func moved(t testing.TB, before, after metricFamilies, want float64, name string, labels ...string) {
	t.Helper()
	a, found := after.value(name, labelMap(labels))
	if !found {
		t.Errorf("%s%v: no such series", name, labels)
		return
	}
	b, _ := before.value(name, labelMap(labels))
	if a-b != want {
		t.Errorf("%s%v moved by %v, want %v (before %v, after %v)", name, labels, a-b, want, b, a)
	}
}

// movedAtLeast checks that a metric grew by at least want.
func movedAtLeast(t testing.TB, before, after metricFamilies, want float64, name string, labels ...string) {
	t.Helper()
	a, found := after.value(name, labelMap(labels))
	if !found {
		t.Errorf("%s%v: no such series", name, labels)
		return
	}
	b, _ := before.value(name, labelMap(labels))
	if a-b < want {
		t.Errorf("%s%v moved by %v, want at least %v", name, labels, a-b, want)
	}
}

// syncBuffer is a log sink tests read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestMetrics drives a real server through every kind of work the metrics describe (writes, reads, a blob up
// and down, a firehose subscriber and a stalled one, a proxied call to a fake AppView over a socket, mail
// through a real SMTP server, a rate-limited request, account status changes, continuous backup rounds), and
// checks on the metrics listener, parsed with Prometheus's own parser, that each metric moved as it should.
func TestMetrics(t *testing.T) {
	plcURL := testplc.Shared(t)
	av := testservice.Start(t, plcURL, appViewDID)
	smtpSrv := testsmtp.Start(t, testsmtp.Options{})
	p := testpds.Start(t, testpds.Options{PLCURL: plcURL, Env: map[string]string{
		"PDS_METRICS_ADDRESS":         "127.0.0.1:0",
		"PDS_BSKY_APP_VIEW_URL":       av.URL,
		"PDS_BSKY_APP_VIEW_DID":       appViewDID,
		"PDS_EMAIL_SMTP_URL":          smtpSrv.URL(),
		"PDS_EMAIL_FROM_ADDRESS":      "PDS <noreply@pds.test>",
		"PDS_RATE_LIMITS_ENABLED":     "true",
		"PDS_MAX_SUBSCRIPTION_BUFFER": "4",
		"PDS_BACKUP_URL":              "file://" + t.TempDir(),
		"PDS_BACKUP_KEY":              "metrics test passphrase",
		"PDS_BACKUP_INTERVAL":         "1s",
	}})
	addr := p.Server.MetricsAddr()
	if addr == "" {
		t.Fatal("PDS_METRICS_ADDRESS is set but no metrics listener")
	}

	// Not on the public listener.
	pub, err := http.Get(p.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	pub.Body.Close()
	if pub.StatusCode != http.StatusNotFound {
		t.Errorf("public listener GET /metrics: %s, want 404", pub.Status)
	}

	alice := p.CreateAccount("alice")
	bob := p.CreateAccount("bob")
	carol := p.CreateAccount("carol")
	sub := testpds.Subscribe(t, p, "")
	sub.Start()
	// A subscriber that connects and never reads, with a small socket buffer: the server's writes to it block,
	// its queue fills past PDS_MAX_SUBSCRIPTION_BUFFER, and it is dropped as too slow.
	stalled := dialStalled(t, p)
	defer stalled.Close()

	s0 := scrape(t, addr)

	// Writes and reads.
	w := testpds.NewWriter(t, p, alice)
	rkey := "m1"
	w.Create(testpds.NoteCollection, rkey, testpds.Note("one"))
	w.Create(testpds.NoteCollection, "m2", testpds.Note("two"))
	w.Create(testpds.NoteCollection, "m3", testpds.Note("three"))
	for range 2 {
		testpds.MustOK(t, p.Query("com.atproto.repo.getRecord", url.Values{"repo": {alice.DID}, "collection": {testpds.NoteCollection}, "rkey": {rkey}}, ""))
	}
	testpds.WantStatus(t, p.Query("com.atproto.repo.getRecord", url.Values{"repo": {alice.DID}, "collection": {testpds.NoteCollection}, "rkey": {"3zzzzzzzzzzzz"}}, ""), 400, "RecordNotFound")
	// A bad write: a commit that fails (swapCommit mismatch) counts as an error.
	bad := p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": testpds.NoteCollection,
		"record": testpds.Note("x"), "swapCommit": "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"}, alice.AccessJwt)
	if bad.Status != 400 {
		t.Fatalf("createRecord with a stale swapCommit: %s", bad)
	}
	// Routes outside /xrpc/.
	for _, path := range []string{"/xrpc/_health", "/.well-known/oauth-authorization-server", "/no/such/page"} {
		resp, err := http.Get(p.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// An NSID that is served nowhere collapses into the "unknown" label.
	testpds.Call(t, p, "GET", "com.example.metrics.noSuchMethod", "", nil, "", nil)

	// A blob up and down.
	data := testpds.RandomBytes(7, 3000)
	ref := testpds.UploadBlobOK(t, p, alice.AccessJwt, "application/octet-stream", data)
	testpds.MustOK(t, testpds.CreateRecord(t, p, alice, testpds.NoteCollection, map[string]any{"$type": testpds.NoteCollection, "text": "blob", "file": ref}))
	if r := testpds.GetBlob(t, p, alice.DID, ref.CID(), nil, ""); r.Status != 200 || !bytes.Equal(r.Body, data) {
		t.Fatalf("getBlob: %d", r.Status)
	}

	// A proxied call to the AppView.
	av.Handle("app.bsky.notification.listNotifications", func(w http.ResponseWriter, r *http.Request) {
		testservice.WriteJSON(w, 200, map[string]any{"notifications": []any{}})
	})
	testpds.WantStatus(t, testpds.Call(t, p, "GET", "app.bsky.notification.listNotifications", "", nil, alice.AccessJwt, nil), 200, "")

	// Mail: one delivered, one refused by the SMTP server.
	testpds.WantStatus(t, p.Procedure("com.atproto.server.requestEmailConfirmation", nil, alice.AccessJwt), 200, "")
	smtpSrv.Next(t)
	smtpSrv.FailWith("mailbox unavailable")
	if r := p.Procedure("com.atproto.server.requestEmailConfirmation", nil, bob.AccessJwt); r.Status == 200 {
		t.Fatalf("requestEmailConfirmation with a failing SMTP server: %s", r)
	}
	smtpSrv.FailWith("")

	// Rate limit: createSession allows 30 tries per 5 minutes per identifier and IP.
	refused := 0
	for range 31 {
		r := p.Procedure("com.atproto.server.createSession", map[string]any{"identifier": "nobody.test", "password": "x"}, "")
		if r.Status == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused != 1 {
		t.Fatalf("%d createSession refused, want 1", refused)
	}

	// Account statuses: bob deactivates, carol is taken down, then deleted.
	testpds.WantStatus(t, p.Procedure("com.atproto.server.deactivateAccount", map[string]any{}, bob.AccessJwt), 200, "")
	testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.admin.updateSubjectStatus", map[string]any{
		"subject":  map[string]any{"$type": "com.atproto.admin.defs#repoRef", "did": carol.DID},
		"takedown": map[string]any{"applied": true, "ref": "metrics-test"},
	}))
	sAccounts := scrape(t, addr)
	testpds.MustOK(t, testpds.AdminProcedure(t, p, "com.atproto.admin.deleteAccount", map[string]any{"did": carol.DID}))

	// The subscriber that reads got every commit (4 creates and the blob post).
	for range 4 {
		sub.Next()
	}

	// Firehose lag and the slow consumer: big commits until the stalled subscriber is dropped.
	big := strings.Repeat("x", 60_000)
	var sDrop metricFamilies
	var maxLag float64
	for i := 0; ; i++ {
		w.Create(testpds.NoteCollection, "big"+strconv.Itoa(i), testpds.Note(big))
		sDrop = scrape(t, addr)
		if sDrop.get(t, "pds_firehose_slow_consumer_drops_total") > s0.get(t, "pds_firehose_slow_consumer_drops_total") {
			break
		}
		if i == 300 {
			t.Fatal("the stalled subscriber was never dropped")
		}
		maxLag = max(maxLag, sDrop.get(t, "pds_firehose_subscriber_lag_max_events"))
	}
	// Before it was dropped, the stalled subscriber lagged.
	if maxLag < 1 {
		t.Errorf("pds_firehose_subscriber_lag_max_events stayed %v with a stalled subscriber", maxLag)
	}

	// Dropped, it stays connected until its error frame is written or times out: closing it ends that.
	stalled.Close()
	testpds.WaitUntil(t, 20*time.Second, "the stalled subscriber's stream to end", func() bool {
		return scrape(t, addr).get(t, "pds_firehose_subscribers") == 1
	})

	// A backup round.
	testpds.WaitUntil(t, 30*time.Second, "a backup round", func() bool {
		v, _ := scrape(t, addr).value("pds_backup_rounds_total", map[string]string{"result": "ok"})
		return v >= 1
	})
	s1 := scrape(t, addr)

	// Requests.
	moved(t, s0, s1, 2, "pds_xrpc_requests_total", "nsid", "com.atproto.repo.getRecord", "status", "200")
	moved(t, s0, s1, 1, "pds_xrpc_requests_total", "nsid", "com.atproto.repo.getRecord", "status", "400")
	moved(t, s0, s1, 3, "pds_xrpc_request_duration_seconds", "nsid", "com.atproto.repo.getRecord")
	moved(t, s0, s1, 1, "pds_xrpc_requests_total", "nsid", "unknown")
	if _, found := s1.value("pds_xrpc_requests_total", map[string]string{"nsid": "com.example.metrics.noSuchMethod"}); found {
		t.Error("an unknown NSID got its own label value")
	}
	moved(t, s0, s1, 1, "pds_xrpc_requests_total", "nsid", "com.atproto.sync.getBlob", "status", "200")
	moved(t, s0, s1, 1, "pds_http_requests_total", "route", "/xrpc/_health", "status", "200")
	moved(t, s0, s1, 1, "pds_http_requests_total", "route", "/.well-known/oauth-authorization-server", "status", "200")
	moved(t, s0, s1, 1, "pds_http_requests_total", "route", "unmatched", "status", "404")
	moved(t, s0, s1, 1, "pds_http_request_duration_seconds", "route", "/xrpc/_health")
	moved(t, s0, s1, 1, "pds_xrpc_requests_total", "nsid", "com.atproto.server.createSession", "status", "429")
	if _, found := s1.value("pds_xrpc_request_duration_seconds", map[string]string{"nsid": "com.atproto.sync.subscribeRepos"}); found {
		t.Error("subscribeRepos is timed: its duration is a connection's lifetime")
	}
	if v := s0.get(t, "pds_xrpc_requests_total", "nsid", "com.atproto.sync.subscribeRepos"); v < 2 {
		t.Errorf("%v subscribeRepos requests counted for two subscribers", v)
	}

	// Commits: 5 before the loop (4 notes and the blob post), one failed, and the loop's.
	creates := s1.get(t, "pds_xrpc_requests_total", "nsid", "com.atproto.repo.createRecord", "status", "200") - s0.get(t, "pds_xrpc_requests_total", "nsid", "com.atproto.repo.createRecord", "status", "200")
	if creates < 6 {
		t.Errorf("%v createRecord 200s", creates)
	}
	moved(t, s0, s1, creates, "pds_commits_total", "result", "ok")
	moved(t, s0, s1, 1, "pds_commits_total", "result", "error")
	moved(t, s0, s1, creates, "pds_commit_duration_seconds")
	movedAtLeast(t, s0, s1, 1, "pds_sequencer_batch_events")
	movedAtLeast(t, s0, s1, creates, "pds_firehose_last_seq")
	if sum := histogramSum(s1, "pds_sequencer_batch_events") - histogramSum(s0, "pds_sequencer_batch_events"); sum < creates {
		t.Errorf("sequencer batches hold %v events, want at least the %v commits", sum, creates)
	}

	// Firehose.
	moved(t, s0, s1, 1, "pds_firehose_slow_consumer_drops_total")
	if v := s0.get(t, "pds_firehose_subscribers"); v != 2 {
		t.Errorf("pds_firehose_subscribers = %v with two subscribers", v)
	}
	if v := s1.get(t, "pds_firehose_subscribers"); v != 1 {
		t.Errorf("pds_firehose_subscribers = %v after the stalled one was dropped", v)
	}
	if v := s0.get(t, "pds_firehose_subscriber_lag_events"); v != 2 {
		t.Errorf("lag histogram counts %v subscribers, want 2", v)
	}

	// Blobs.
	moved(t, s0, s1, float64(len(data)), "pds_blob_received_bytes_total")
	moved(t, s0, s1, float64(len(data)), "pds_blob_sent_bytes_total")

	// Proxy.
	moved(t, s0, s1, 1, "pds_proxy_requests_total", "service", "appview", "status", "200")
	moved(t, s0, s1, 1, "pds_proxy_request_duration_seconds", "service", "appview")

	// Mail.
	moved(t, s0, s1, 1, "pds_mail_sent_total")
	moved(t, s0, s1, 1, "pds_mail_failures_total")

	// Rate limits.
	moved(t, s0, s1, 1, "pds_rate_limit_refusals_total", "limit", "createSession-5m")

	// Accounts.
	for status, want := range map[string]float64{"active": 3, "deactivated": 0, "takendown": 0} {
		if v := s0.get(t, "pds_accounts", "status", status); v != want {
			t.Errorf("before: pds_accounts{status=%q} = %v, want %v", status, v, want)
		}
	}
	for status, want := range map[string]float64{"active": 1, "deactivated": 1, "takendown": 1} {
		if v := sAccounts.get(t, "pds_accounts", "status", status); v != want {
			t.Errorf("after: pds_accounts{status=%q} = %v, want %v", status, v, want)
		}
	}
	if v := s1.get(t, "pds_accounts", "status", "takendown"); v != 0 {
		t.Errorf("a deleted account still counts as taken down (%v)", v)
	}
	moved(t, s0, s1, 1, "pds_account_deletions_total")

	// Files.
	for _, db := range []string{"account", "sequencer", "repos"} {
		if v := s1.get(t, "pds_sqlite_file_bytes", "db", db, "file", "db"); v <= 0 {
			t.Errorf("pds_sqlite_file_bytes{db=%q,file=\"db\"} = %v", db, v)
		}
	}
	if v := s1.get(t, "pds_sqlite_file_bytes", "db", "sequencer", "file", "wal"); v <= 0 {
		t.Errorf("sequencer WAL size %v after writes", v)
	}
	for _, src := range []string{"accounts", "repos"} {
		if v := s1.get(t, "pds_scrape_source_ok", "source", src); v != 1 {
			t.Errorf("pds_scrape_source_ok{source=%q} = %v", src, v)
		}
	}

	// Backup.
	if v := s1.get(t, "pds_backup_uploaded_bytes_total"); v <= 0 {
		t.Errorf("pds_backup_uploaded_bytes_total = %v after a round", v)
	}
	last := s1.get(t, "pds_backup_last_success_timestamp_seconds")
	if now := float64(time.Now().Unix()); last < now-120 || last > now+1 {
		t.Errorf("pds_backup_last_success_timestamp_seconds = %v, now %v", last, now)
	}
	if lag := s1.get(t, "pds_backup_lag_seconds"); lag < 0 || lag > 120 {
		t.Errorf("pds_backup_lag_seconds = %v", lag)
	}

	// Runtime.
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes", "pds_build_info"} {
		if v := s1.get(t, name); v <= 0 {
			t.Errorf("%s = %v", name, v)
		}
	}

	checkOperationsDocs(t, s1)

	// The listener stops with the server.
	p.Stop()
	if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
		resp.Body.Close()
		t.Error("metrics listener still serving after the server stopped")
	}
}

// checkOperationsDocs checks docs/operations.md, its alert rules and its Grafana dashboard against what a
// server that did everything exports: every pds_* (and go_*, process_*) name they use exists, every pds_*
// metric is documented, and the rule file has a rule file's structure.
func checkOperationsDocs(t *testing.T, exported metricFamilies) {
	t.Helper()
	exists := func(name string) bool {
		if exported[name] != nil {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && exported[base] != nil && exported[base].GetType() == dto.MetricType_HISTOGRAM {
				return true
			}
		}
		return false
	}
	names := regexp.MustCompile(`\b(?:pds|go|process)_[a-z0-9_]*[a-z0-9]`)

	// The rule file.
	raw, err := os.ReadFile("../docs/operations/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert       string
				Expr        string
				For         string
				Labels      map[string]string
				Annotations map[string]string
			}
		}
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	duration := regexp.MustCompile(`^[0-9]+[smhdw]$`)
	alerts := map[string]bool{}
	var exprs []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || alerts[r.Alert] {
				t.Errorf("alerts.yml: rule %q: no name, no expr or a duplicate", r.Alert)
			}
			alerts[r.Alert] = true
			if r.For != "" && !duration.MatchString(r.For) {
				t.Errorf("alerts.yml: %s: for %q", r.Alert, r.For)
			}
			if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" {
				t.Errorf("alerts.yml: %s: severity %q", r.Alert, sev)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alerts.yml: %s: summary and description wanted", r.Alert)
			}
			if !balanced(r.Expr) {
				t.Errorf("alerts.yml: %s: unbalanced brackets in %q", r.Alert, r.Expr)
			}
			exprs = append(exprs, r.Expr)
		}
	}
	for _, want := range []string{"PDSBackupLagging", "PDSHigh5xxRate", "PDSFirehoseSubscriberLagging", "PDSDiskAlmostFull", "PDSMailFailing"} {
		if !alerts[want] {
			t.Errorf("alerts.yml has no %s", want)
		}
	}
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for a := range alerts {
		if !strings.Contains(string(doc), "`"+a+"`") {
			t.Errorf("operations.md does not explain alert %s", a)
		}
	}

	// The dashboard.
	raw, err = os.ReadFile("../docs/operations/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Type    string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	graphs := 0
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		graphs++
		if len(p.Targets) == 0 {
			t.Errorf("dashboard panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if !balanced(tg.Expr) {
				t.Errorf("dashboard panel %q: unbalanced brackets in %q", p.Title, tg.Expr)
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	if graphs < 20 {
		t.Errorf("dashboard has %d panels", graphs)
	}
	for _, e := range exprs {
		for _, n := range names.FindAllString(e, -1) {
			if !exists(n) {
				t.Errorf("%s (in %q) is not exported", n, e)
			}
		}
	}

	// The page: every pds_* metric is documented, and every one documented exists.
	documented := map[string]bool{}
	for _, n := range regexp.MustCompile("`(pds_[a-z0-9_]+)`").FindAllStringSubmatch(string(doc), -1) {
		documented[n[1]] = true
		if !exists(n[1]) {
			t.Errorf("operations.md documents %s, which is not exported", n[1])
		}
	}
	for name := range exported {
		if strings.HasPrefix(name, "pds_") && !documented[name] {
			t.Errorf("%s is not documented in operations.md", name)
		}
	}
}

// balanced reports whether (), [] and {} nest properly outside double-quoted strings.
func balanced(s string) bool {
	var stack []rune
	inQuote := false
	for i, c := range s {
		if inQuote {
			if c == '"' && (i == 0 || s[i-1] != '\\') {
				inQuote = false
			}
			continue
		}
		switch c {
		case '"':
			inQuote = true
		case '(', '[', '{':
			stack = append(stack, c)
		case ')', ']', '}':
			open := map[rune]rune{')': '(', ']': '[', '}': '{'}[c]
			if len(stack) == 0 || stack[len(stack)-1] != open {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) == 0 && !inQuote
}

func histogramSum(f metricFamilies, name string) float64 {
	var sum float64
	if fam := f[name]; fam != nil {
		for _, m := range fam.Metric {
			if m.Histogram != nil {
				sum += m.Histogram.GetSampleSum()
			}
		}
	}
	return sum
}

// dialStalled connects a firehose subscriber with a small receive buffer that never reads.
func dialStalled(t *testing.T, p *testpds.PDS) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{NetDialContext: smallBufferDial, ReadBufferSize: 1024}
	conn, _, err := d.Dial(testpds.FirehoseURL(p, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// TestMetricsOffByDefault: without PDS_METRICS_ADDRESS there is no metrics listener, and the public listener
// never serves /metrics.
func TestMetricsOffByDefault(t *testing.T) {
	p := testpds.Start(t, testpds.Options{})
	if a := p.Server.MetricsAddr(); a != "" {
		t.Fatalf("metrics listener on %s without PDS_METRICS_ADDRESS", a)
	}
	for _, path := range []string{"/metrics", "/xrpc/metrics"} {
		resp, err := http.Get(p.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 || strings.Contains(b.String(), "go_goroutines") {
			t.Errorf("GET %s on the public listener: %d %q", path, resp.StatusCode, b.String())
		}
	}
}

var requestIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestRequestID: every response carries X-Request-Id, fresh per request; a trusted proxy's well-formed ID is
// kept, anything else replaced; and the request's JSON log lines carry it as request_id.
func TestRequestID(t *testing.T) {
	var logs syncBuffer
	cfgLog := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := testpds.Start(t, testpds.Options{Logger: cfgLog})

	r1 := p.Query("com.atproto.server.describeServer", nil, "")
	r2 := p.Query("com.atproto.server.describeServer", nil, "")
	id1, id2 := r1.Header.Get("X-Request-Id"), r2.Header.Get("X-Request-Id")
	if !requestIDPattern.MatchString(id1) || !requestIDPattern.MatchString(id2) || id1 == id2 {
		t.Fatalf("request IDs %q, %q", id1, id2)
	}
	// Errors get one too.
	bad := p.Query("com.atproto.repo.getRecord", url.Values{"repo": {"did:plc:nobody"}}, "")
	if bad.Status != 400 || !requestIDPattern.MatchString(bad.Header.Get("X-Request-Id")) {
		t.Fatalf("error response: %d, id %q", bad.Status, bad.Header.Get("X-Request-Id"))
	}

	send := func(id string) string {
		req, _ := http.NewRequest("GET", p.URL+"/xrpc/_health", nil)
		req.Header.Set("X-Request-Id", id)
		return p.Do(req, "").Header.Get("X-Request-Id")
	}
	// The test client is on loopback: a trusted proxy by default (PDS_TRUSTED_PROXIES).
	if got := send("edge-7f3a:01.b_c"); got != "edge-7f3a:01.b_c" {
		t.Errorf("a trusted proxy's X-Request-Id became %q", got)
	}
	for _, in := range []string{"has space", strings.Repeat("a", 65), "quote\"d", "{json}"} {
		if got := send(in); got == in || !requestIDPattern.MatchString(got) {
			t.Errorf("inbound X-Request-Id %q answered with %q", in, got)
		}
	}

	// The JSON log has the request's access line with its ID.
	testpds.WaitUntil(t, 5*time.Second, "the access line", func() bool { return strings.Contains(logs.String(), id1) })
	found := false
	for _, line := range strings.Split(logs.String(), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["request_id"] == id1 {
			found = true
			if rec["msg"] != "request" || rec["path"] != "/xrpc/com.atproto.server.describeServer" || rec["status"] != float64(200) {
				t.Errorf("access line: %v", rec)
			}
		}
	}
	if !found {
		t.Errorf("no log line has request_id %s", id1)
	}
}

// TestRequestIDUntrustedPeer: with no trusted proxies, an inbound X-Request-Id is never used.
func TestRequestIDUntrustedPeer(t *testing.T) {
	p := testpds.Start(t, testpds.Options{Env: map[string]string{"PDS_TRUSTED_PROXIES": "none"}})
	req, _ := http.NewRequest("GET", p.URL+"/xrpc/_health", nil)
	req.Header.Set("X-Request-Id", "client-chosen")
	if got := p.Do(req, "").Header.Get("X-Request-Id"); !requestIDPattern.MatchString(got) {
		t.Errorf("untrusted peer's X-Request-Id answered with %q", got)
	}
}

// TestAlertRulesPromtool checks the shipped alert rules with Prometheus's own checker (Debian's prometheus
// package, installed by .ci/run): PromQL syntax, durations and templates, which the structural checks in
// TestMetrics cannot see.
func TestAlertRulesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found (Debian's prometheus package; .ci/run installs it)")
	}
	out, err := exec.Command(promtool, "check", "rules", "../docs/operations/alerts.yml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool check rules said:\n%s", out)
	}
}
