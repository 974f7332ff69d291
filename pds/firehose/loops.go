package firehose

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pdsgo/pds/internal/background"
	"github.com/pdsgo/pds/pds/sequencer"
	"github.com/pdsgo/pds/repo"
)

// DefaultCrawlNotifyInterval is the least time between two requestCrawl rounds, as the reference.
const DefaultCrawlNotifyInterval = 20 * time.Minute

// Config is what the firehose reads of the server's configuration.
type Config struct {
	BackfillLimit         time.Duration // PDS_REPO_BACKFILL_LIMIT_MS: events kept and replayable
	MaxSubscriptionBuffer int           // events a live subscriber may fall behind before it is dropped
	Crawlers              []string      // PDS_CRAWLERS: relays asked to crawl this server
	CrawlInterval         time.Duration // least time between requestCrawl rounds; 0 = DefaultCrawlNotifyInterval
	PublicURL, Hostname   string        // what relays are told to crawl
	UserAgent             string
}

// Firehose serves the event stream and runs its background loops.
type Firehose struct {
	cfg    Config
	seq    *sequencer.Sequencer
	repos  *repo.Store // made durable before events are pruned
	log    *slog.Logger
	bg     *background.Group
	client *http.Client // requestCrawl

	// streams holds the seq of the last event sent to each connected subscriber (its lag, for pds/metrics).
	streamsMu sync.Mutex
	streams   map[*atomic.Int64]struct{}
}

// New builds the firehose over the sequencer; Start starts its loops, Subscribe serves subscribers.
func New(cfg Config, seq *sequencer.Sequencer, repos *repo.Store, log *slog.Logger, bg *background.Group, client *http.Client) *Firehose {
	return &Firehose{cfg: cfg, seq: seq, repos: repos, log: log, bg: bg, client: client, streams: map[*atomic.Int64]struct{}{}}
}

// Start starts retention pruning and crawler notifications (in the background group).
func (s *Firehose) Start() {
	s.bg.Go(s.retentionLoop)
	if len(s.cfg.Crawlers) > 0 {
		crawlInterval := s.cfg.CrawlInterval
		if crawlInterval <= 0 {
			crawlInterval = DefaultCrawlNotifyInterval
		}
		activity := make(chan struct{}, 1)
		s.seq.Notify(activity)
		s.bg.Go(func() { s.crawlLoop(activity, crawlInterval) })
	}
}

// retentionLoop deletes events older than the backfill window (PDS_REPO_BACKFILL_LIMIT_MS). Subscribers with an
// older cursor get #info OutdatedCursor whether or not the prune has run yet.
func (s *Firehose) retentionLoop() {
	interval := min(max(s.cfg.BackfillLimit/4, 50*time.Millisecond), 5*time.Minute)
	t := time.NewTicker(interval)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.bg.Quit()
		cancel()
	}()
	for {
		// The log is what recovery replays into a repo that lost unsynced commits (DeferSync): repos are made
		// durable before events go, so every pruned event's commit is on disk in its repo.
		cutoff := time.Now().Add(-s.cfg.BackfillLimit)
		var n int64
		due, err := s.seq.PruneNeeded(ctx, cutoff)
		if due && err == nil {
			err = s.repos.Sync()
		}
		if due && err == nil {
			n, err = s.seq.Prune(ctx, cutoff)
		}
		if err != nil && ctx.Err() == nil {
			s.log.Error("firehose retention: pruning failed", "err", err)
		} else if n > 0 {
			s.log.Debug("firehose retention: pruned events", "events", n)
		}
		select {
		case <-s.bg.Quit():
			return
		case <-t.C:
		}
	}
}

// crawlLoop asks every crawler (relay) in PDS_CRAWLERS to crawl this server: at start, then after new events,
// at most once per interval. Activity inside the interval is not forgotten (the reference's TODO): it
// triggers one request when the interval ends.
func (s *Firehose) crawlLoop(activity <-chan struct{}, interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.bg.Quit()
		cancel()
	}()
	s.requestCrawl(ctx)
	last := time.Now()
	var due <-chan time.Time // set while activity waits for the interval to end
	for {
		select {
		case <-s.bg.Quit():
			return
		case <-activity:
			if due != nil {
				continue
			}
			if wait := interval - time.Since(last); wait > 0 {
				due = time.After(wait)
				continue
			}
		case <-due:
			due = nil
		}
		s.requestCrawl(ctx)
		last = time.Now()
	}
}

// crawlHostname is what relays are told to crawl: the public URL's host, which is the hostname in
// production and localhost:<port> for a local server (a relay could not connect to bare "localhost").
func (s *Firehose) crawlHostname() string {
	if u, err := url.Parse(s.cfg.PublicURL); err == nil && u.Host != "" {
		return u.Host
	}
	return s.cfg.Hostname
}

// requestCrawl calls com.atproto.sync.requestCrawl on every crawler in parallel; failures are logged only.
func (s *Firehose) requestCrawl(ctx context.Context) {
	body, _ := json.Marshal(map[string]string{"hostname": s.crawlHostname()})
	var wg sync.WaitGroup
	for _, crawler := range s.cfg.Crawlers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.requestCrawlOne(ctx, crawler, body); err != nil && ctx.Err() == nil {
				s.log.Warn("failed to request crawl", "crawler", crawler, "err", err)
			}
		}()
	}
	wg.Wait()
}

func (s *Firehose) requestCrawlOne(ctx context.Context, crawler string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	u := strings.TrimRight(crawler, "/") + "/xrpc/com.atproto.sync.requestCrawl"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.cfg.UserAgent)
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
