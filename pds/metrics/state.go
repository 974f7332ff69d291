package metrics

import (
	"context"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Sources are what the scrape-time collector reads; any may be nil.
type Sources struct {
	// AccountsByStatus counts accounts by status (active, deactivated, takendown).
	AccountsByStatus func(ctx context.Context) (map[string]int64, error)
	// Firehose is the event stream's state.
	Firehose Firehose
	// SQLiteFiles maps a database's label to its file; the file's -wal beside it is measured too.
	SQLiteFiles map[string]string
	// Repos sums the per-account repository files (main files and WALs). It walks a directory per account, so
	// its answer is kept for RepoUsageTTL.
	Repos func() (db, wal int64, err error)
}

// Firehose is what the collector reads of the event stream (*firehose.Firehose).
type Firehose interface {
	Head() int64                        // seq of the last event published
	SubscriberLags(dst []int64) []int64 // per connected subscriber: events published but not yet sent to it
}

// RepoUsageTTL is how long the repositories' summed size is reused between scrapes.
const RepoUsageTTL = time.Minute

// scrapeTimeout bounds the store query of one scrape.
const scrapeTimeout = 5 * time.Second

// lagBuckets: events a subscriber is behind (the default buffer drops it at 500).
var lagBuckets = []float64{0, 1, 10, 50, 100, 250, 500, 1000, 10000}

// Watch registers the collector of state read at scrape time.
func (m *Metrics) Watch(src Sources) {
	m.reg.MustRegister(&stateCollector{src: src})
}

type stateCollector struct {
	src Sources

	mu          sync.Mutex
	reposAt     time.Time
	reposDB     int64
	reposWAL    int64
	reposFailed bool
}

var (
	descAccounts = prometheus.NewDesc("pds_accounts", "Hosted accounts by status (active, deactivated, takendown); read from account.sqlite at scrape time.", []string{"status"}, nil)
	descSQLite   = prometheus.NewDesc("pds_sqlite_file_bytes", "Size of the SQLite files in the data directory by database (account, sequencer, blobgc; repos: every account's repository summed) and file (db: the main file, wal: its write-ahead log).", []string{"db", "file"}, nil)
	descHead     = prometheus.NewDesc("pds_firehose_last_seq", "Seq of the last event published on the firehose.", nil, nil)
	descSubs     = prometheus.NewDesc("pds_firehose_subscribers", "Connected subscribeRepos websockets (replaying or live).", nil, nil)
	descLag      = prometheus.NewDesc("pds_firehose_subscriber_lag_events", "Distribution of connected subscribers' lag at scrape time: events published but not yet written to each.", nil, nil)
	descLagMax   = prometheus.NewDesc("pds_firehose_subscriber_lag_max_events", "The largest lag of a connected subscriber at scrape time (events).", nil, nil)
	descScrapeOK = prometheus.NewDesc("pds_scrape_source_ok", "1 when this scrape's read of a source (accounts, repos) worked, 0 when it failed (its metrics are then missing or stale).", []string{"source"}, nil)
)

func (sc *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAccounts, descSQLite, descHead, descSubs, descLag, descLagMax, descScrapeOK} {
		ch <- d
	}
}

func (sc *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ok := map[string]float64{}
	if f := sc.src.AccountsByStatus; f != nil {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		counts, err := f(ctx)
		cancel()
		ok["accounts"] = boolValue(err == nil)
		for _, status := range []string{"active", "deactivated", "takendown"} {
			if err == nil {
				ch <- prometheus.MustNewConstMetric(descAccounts, prometheus.GaugeValue, float64(counts[status]), status)
			}
		}
	}
	names := make([]string, 0, len(sc.src.SQLiteFiles))
	for n := range sc.src.SQLiteFiles {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		p := sc.src.SQLiteFiles[n]
		ch <- prometheus.MustNewConstMetric(descSQLite, prometheus.GaugeValue, float64(fileSize(p)), n, "db")
		ch <- prometheus.MustNewConstMetric(descSQLite, prometheus.GaugeValue, float64(fileSize(p+"-wal")), n, "wal")
	}
	if sc.src.Repos != nil {
		db, wal, read := sc.repos()
		ok["repos"] = boolValue(read)
		if read {
			ch <- prometheus.MustNewConstMetric(descSQLite, prometheus.GaugeValue, float64(db), "repos", "db")
			ch <- prometheus.MustNewConstMetric(descSQLite, prometheus.GaugeValue, float64(wal), "repos", "wal")
		}
	}
	if fh := sc.src.Firehose; fh != nil {
		ch <- prometheus.MustNewConstMetric(descHead, prometheus.GaugeValue, float64(fh.Head()))
		lags := fh.SubscriberLags(nil)
		ch <- prometheus.MustNewConstMetric(descSubs, prometheus.GaugeValue, float64(len(lags)))
		buckets := make(map[float64]uint64, len(lagBuckets))
		var sum float64
		var maxLag int64
		for _, l := range lags {
			sum += float64(l)
			maxLag = max(maxLag, l)
			for _, b := range lagBuckets {
				if float64(l) <= b {
					buckets[b]++
				}
			}
		}
		ch <- prometheus.MustNewConstHistogram(descLag, uint64(len(lags)), sum, buckets)
		ch <- prometheus.MustNewConstMetric(descLagMax, prometheus.GaugeValue, float64(maxLag))
	}
	for src, v := range ok {
		ch <- prometheus.MustNewConstMetric(descScrapeOK, prometheus.GaugeValue, v, src)
	}
}

// repos returns the repositories' summed sizes, walking them at most once per RepoUsageTTL.
func (sc *stateCollector) repos() (db, wal int64, ok bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.reposAt.IsZero() || time.Since(sc.reposAt) > RepoUsageTTL {
		db, wal, err := sc.src.Repos()
		sc.reposAt = time.Now()
		sc.reposFailed = err != nil
		if err == nil {
			sc.reposDB, sc.reposWAL = db, wal
		}
	}
	return sc.reposDB, sc.reposWAL, !sc.reposFailed
}

// fileSize is a file's size, 0 when it does not exist (no WAL between checkpoints, no blobgc.sqlite yet).
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
