package metrics

import (
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Latency buckets (seconds): a getRecord takes ~0.1 ms, a durable commit ~1 ms, a proxied call tens of ms.
var latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// batchBuckets: events per sequencer transaction (at most 1000).
var batchBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000}

// Metrics is the server's registry and the metrics in it. Its methods are the hooks the other packages call;
// all are safe for concurrent use.
type Metrics struct {
	reg   *prometheus.Registry
	start time.Time

	requests requests

	commits        *prometheus.CounterVec
	commitOK       prometheus.Counter
	commitFailed   prometheus.Counter
	commitDuration prometheus.Histogram

	seqBatch  prometheus.Histogram
	slowDrops prometheus.Counter

	blobIn, blobOut prometheus.Counter
	deletions       prometheus.Counter
	refusals        *prometheus.CounterVec

	proxyCalls    *prometheus.CounterVec
	proxyDuration *prometheus.HistogramVec

	mailSent, mailFailed prometheus.Counter

	backup backupMetrics
}

// New builds the registry with every metric that is always there, plus the Go runtime and process
// collectors. version is the server's (pds_build_info).
func New(version string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), start: time.Now()}
	f := factory{m.reg}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	f.gauge("pds_build_info", "Always 1; the labels say which build is running.",
		prometheus.Labels{"version": version, "goversion": runtime.Version()}).Set(1)

	m.requests.init(f)

	m.commits = f.counterVec("pds_commits_total", "Repository commits through the write path, by result (ok: durable and on the firehose; error: refused or failed).", "result")
	m.commitOK = m.commits.WithLabelValues("ok")
	m.commitFailed = m.commits.WithLabelValues("error")
	m.commitDuration = f.histogram("pds_commit_duration_seconds", "Time from a commit entering the write path to its acknowledgement (repo transaction and firehose log durable), successful commits only.", latencyBuckets)

	m.seqBatch = f.histogram("pds_sequencer_batch_events", "Events stored per firehose-log transaction (group commit: one fsync for the batch).", batchBuckets)
	m.slowDrops = f.counter("pds_firehose_slow_consumer_drops_total", "Firehose subscribers dropped because their buffer overflowed (ConsumerTooSlow).")

	m.blobIn = f.counter("pds_blob_received_bytes_total", "Blob bytes received by uploadBlob (stored uploads only).")
	m.blobOut = f.counter("pds_blob_sent_bytes_total", "Blob bytes sent by sync.getBlob (body bytes written, ranges included).")
	m.deletions = f.counter("pds_account_deletions_total", "Accounts deleted (by their owner, an admin or the deletion job) since the server started.")
	m.refusals = f.counterVec("pds_rate_limit_refusals_total", "Requests refused with 429 RateLimitExceeded, by the limit that was exceeded.", "limit")

	m.proxyCalls = f.counterVec("pds_proxy_requests_total", "Calls made to other services on behalf of accounts (proxying, read-after-write, feeds, push), by service and HTTP status (\"error\": no response).", "service", "status")
	m.proxyDuration = f.histogramVec("pds_proxy_request_duration_seconds", "Time until a proxied call's response headers (or its failure), by service.", latencyBuckets, "service")

	m.mailSent = f.counter("pds_mail_sent_total", "Emails handed to the SMTP server (or logged, without PDS_EMAIL_SMTP_URL).")
	m.mailFailed = f.counter("pds_mail_failures_total", "Emails that could not be sent.")
	return m
}

// Registry is the registry /metrics serves (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// factory registers metrics as it makes them.
type factory struct{ reg *prometheus.Registry }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gauge(name, help string, constLabels prometheus.Labels) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: constLabels})
	f.reg.MustRegister(g)
	return g
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

func (f factory) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}

// ---- hooks (the interfaces are declared by the packages that call them) ----

// Commit records a commit through the write path (writer.Metrics).
func (m *Metrics) Commit(d time.Duration, err error) {
	if err != nil {
		m.commitFailed.Inc()
		return
	}
	m.commitOK.Inc()
	m.commitDuration.Observe(d.Seconds())
}

// Batch records the size of one stored firehose-log batch (sequencer.Metrics).
func (m *Metrics) Batch(events int) { m.seqBatch.Observe(float64(events)) }

// SlowConsumer records a firehose subscriber dropped for falling behind (sequencer.Metrics).
func (m *Metrics) SlowConsumer() { m.slowDrops.Inc() }

// BlobReceived counts uploaded blob bytes.
func (m *Metrics) BlobReceived(n int64) {
	if m != nil && n > 0 {
		m.blobIn.Add(float64(n))
	}
}

// BlobSent counts blob bytes served.
func (m *Metrics) BlobSent(n int64) {
	if m != nil && n > 0 {
		m.blobOut.Add(float64(n))
	}
}

// AccountDeleted counts a deleted account (accounts.Metrics).
func (m *Metrics) AccountDeleted() { m.deletions.Inc() }

// Refused counts a request refused by the rate limit named limit (ratelimit.Metrics); limit names are the
// server's fixed limiter names.
func (m *Metrics) Refused(limit string) { m.refusals.WithLabelValues(limit).Inc() }

// ProxyCall records a call to another service (proxy.Metrics): service is one of a fixed set of names
// (appview, mod, report, other), status the HTTP status or 0 when no response came.
func (m *Metrics) ProxyCall(service string, status int, d time.Duration) {
	s := "error"
	if status > 0 {
		s = statusText(status)
	}
	m.proxyCalls.WithLabelValues(service, s).Inc()
	m.proxyDuration.WithLabelValues(service).Observe(d.Seconds())
}

// Mail records an email's outcome.
func (m *Metrics) Mail(err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.mailFailed.Inc()
	} else {
		m.mailSent.Inc()
	}
}

// ---- backup ----

type backupMetrics struct {
	enabled     atomic.Bool
	lastSuccess atomic.Int64 // unix nanos of the start of the last successful round; 0: none yet
}

// Backup registers the continuous-backup metrics (only for a server that backs up) and returns the hook for
// backup.RunObserved.
func (m *Metrics) Backup() *BackupHook {
	h := &BackupHook{m: m}
	if !m.backup.enabled.Swap(true) {
		f := factory{m.reg}
		h.rounds = f.counterVec("pds_backup_rounds_total", "Continuous backup rounds, by result (ok, error).", "result")
		h.bytes = f.counter("pds_backup_uploaded_bytes_total", "Encrypted bytes uploaded by backup rounds.")
		h.duration = f.gauge("pds_backup_last_round_duration_seconds", "How long the last successful backup round took.", nil)
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pds_backup_last_success_timestamp_seconds",
			Help: "Unix time at which the last successful backup round started (its snapshot time); 0 before the first.",
		}, func() float64 {
			if t := m.backup.lastSuccess.Load(); t > 0 {
				return float64(t) / 1e9
			}
			return 0
		}))
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pds_backup_lag_seconds",
			Help: "Age of the newest data guaranteed in the backup: now minus the start of the last successful round (since the server started, before the first).",
		}, func() float64 {
			since := m.start
			if t := m.backup.lastSuccess.Load(); t > 0 {
				since = time.Unix(0, t)
			}
			return time.Since(since).Seconds()
		}))
	}
	return h
}

// BackupHook receives the continuous backup's rounds (backup.Observer).
type BackupHook struct {
	m        *Metrics
	rounds   *prometheus.CounterVec
	bytes    prometheus.Counter
	duration prometheus.Gauge
}

// RoundDone records a finished round that started at start and uploaded bytes.
func (h *BackupHook) RoundDone(start time.Time, bytes int64, d time.Duration, err error) {
	if h.rounds == nil {
		return // a second hook: the first one records
	}
	if err != nil {
		h.rounds.WithLabelValues("error").Inc()
		return
	}
	h.rounds.WithLabelValues("ok").Inc()
	h.bytes.Add(float64(bytes))
	h.duration.Set(d.Seconds())
	h.m.backup.lastSuccess.Store(start.UnixNano())
}
