package pds

import (
	"time"

	"github.com/pdsgo/pds/pds/firehose"
)

// DefaultCrawlNotifyInterval is the least time between two requestCrawl rounds, as the reference.
const DefaultCrawlNotifyInterval = firehose.DefaultCrawlNotifyInterval

// FirehoseHead is the seq of the last event on the firehose (durable).
func (s *Server) FirehoseHead() int64 { return s.firehose.Head() }

// FirehoseSubscribers is the number of live firehose subscriptions.
func (s *Server) FirehoseSubscribers() int { return s.firehose.Subscribers() }

// firehoseConfig is what package firehose reads of the configuration.
func (c *Config) firehoseConfig(crawlInterval time.Duration) firehose.Config {
	return firehose.Config{
		BackfillLimit:         c.BackfillLimit,
		MaxSubscriptionBuffer: c.MaxSubscriptionBuffer,
		Crawlers:              c.Crawlers,
		CrawlInterval:         crawlInterval,
		PublicURL:             c.PublicURL,
		Hostname:              c.Hostname,
		UserAgent:             "pdsgo/" + Version,
	}
}
