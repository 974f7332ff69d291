package pds

import (
	"context"
	"path/filepath"

	"github.com/pdsgo/pds/lexicons"
	"github.com/pdsgo/pds/pds/accounts"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/mailer"
	"github.com/pdsgo/pds/pds/metrics"
	"github.com/pdsgo/pds/pds/proxy"
)

// The metrics' wiring (pds/metrics): the hooks go to the packages that call them, the scrape-time sources
// are read from the stores, and the listener starts with the server.

// startMetrics registers the scrape-time sources and opens the PDS_METRICS_ADDRESS listener.
func (s *Server) startMetrics(store *accountstore.Store) error {
	dir := s.cfg.DataDirectory
	s.metrics.Watch(metrics.Sources{
		AccountsByStatus: store.CountByStatus,
		Firehose:         s.firehose,
		SQLiteFiles: map[string]string{
			"account":   filepath.Join(dir, "account.sqlite"),
			"sequencer": filepath.Join(dir, "sequencer.sqlite"),
			"blobgc":    filepath.Join(dir, "blobgc.sqlite"),
		},
		Repos: s.repos.DiskUsage,
	})
	srv, err := s.metrics.Listen(s.cfg.Observability.MetricsAddress, s.log)
	if err != nil {
		return err
	}
	s.metricsSrv = srv
	return nil
}

// MetricsAddr is the address /metrics is served on ("" when PDS_METRICS_ADDRESS is unset).
func (s *Server) MetricsAddr() string {
	if s.metricsSrv == nil {
		return ""
	}
	return s.metricsSrv.Addr()
}

// metricsRoutes gives the request metrics their label values: every NSID served here or in the lexicons (the
// proxy forwards those), and the echo routes outside /xrpc/.
func (s *Server) metricsRoutes(served []string, paths []string) {
	if s.metrics == nil {
		return
	}
	s.metrics.Routes(append(lexicons.NSIDs(), served...), []string{"com.atproto.sync.subscribeRepos"}, paths)
}

// countedMailer counts sent and failed mail.
type countedMailer struct {
	mailer.Mailer
	m *metrics.Metrics
}

func (c countedMailer) Send(ctx context.Context, to, subject, textBody, htmlBody string) error {
	err := c.Mailer.Send(ctx, to, subject, textBody, htmlBody)
	c.m.Mail(err)
	return err
}

// A nil *metrics.Metrics must reach the packages as a nil interface, not a non-nil one holding nil.

func accountMetrics(m *metrics.Metrics) accounts.Metrics {
	if m == nil {
		return nil
	}
	return m
}

func proxyMetrics(m *metrics.Metrics) proxy.Metrics {
	if m == nil {
		return nil
	}
	return m
}
