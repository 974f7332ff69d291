// Package metrics owns the server's Prometheus metrics: one registry (never the global default), the metric
// definitions (names, units, labels, buckets), the collectors that read state at scrape time (accounts by
// status, SQLite file sizes, firehose subscribers and their lag, backup lag) and the /metrics listener
// (PDS_METRICS_ADDRESS). docs/operations.md lists every metric.
//
// Other packages never import Prometheus: each declares the narrow hook it calls (sequencer.Metrics,
// writer.Metrics, proxy.Metrics, ratelimit.Metrics, accounts.Metrics, backup.Observer), which *Metrics (or,
// for backups, the BackupHook from Metrics.Backup) implements, and package pds wires them when
// PDS_METRICS_ADDRESS is set. Hot-path hooks use pre-resolved children (a request's series are looked up once
// per method and status, then reused) and do not allocate.
//
// It may not touch the stores itself: what it reads at scrape time comes in as functions (Sources).
package metrics
