package pds

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// DefaultCrawlNotifyInterval is the least time between two requestCrawl rounds, as the reference.
const DefaultCrawlNotifyInterval = 20 * time.Minute

// FirehoseHead is the seq of the last event on the firehose (durable).
func (s *Server) FirehoseHead() int64 { return s.seq.Head() }

// FirehoseSubscribers is the number of live firehose subscriptions.
func (s *Server) FirehoseSubscribers() int { return s.seq.Subscribers() }

// startFirehoseBackground starts retention pruning and crawler notifications.
func (s *Server) startFirehoseBackground(crawlInterval time.Duration) {
	s.bg.Go(s.retentionLoop)
	if len(s.cfg.Crawlers) > 0 {
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
func (s *Server) retentionLoop() {
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
func (s *Server) crawlLoop(activity <-chan struct{}, interval time.Duration) {
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
func (s *Server) crawlHostname() string {
	if u, err := url.Parse(s.cfg.PublicURL); err == nil && u.Host != "" {
		return u.Host
	}
	return s.cfg.Hostname
}

// requestCrawl calls com.atproto.sync.requestCrawl on every crawler in parallel; failures are logged only.
func (s *Server) requestCrawl(ctx context.Context) {
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

func (s *Server) requestCrawlOne(ctx context.Context, crawler string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	u := strings.TrimRight(crawler, "/") + "/xrpc/com.atproto.sync.requestCrawl"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pdsgo/"+Version)
	resp, err := s.httpClient.Do(req)
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
