package pds

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"

	"github.com/pdsgo/pds/pds/requestid"
)

// Log formats (PDS_LOG_FORMAT).
const (
	LogFormatText = "text"
	LogFormatJSON = "json"
)

// ObservabilityConfig is how the server reports on itself: logs (PDS_LOG_FORMAT, PDS_LOG_LEVEL) and the
// Prometheus listener (PDS_METRICS_ADDRESS). See docs/operations.md.
type ObservabilityConfig struct {
	LogFormat string     // text (default) or json
	LogLevel  slog.Level // debug, info (default), warn or error
	// MetricsAddress is where /metrics is served (host:port, its own listener); "" = off (the default).
	MetricsAddress string
}

// loadObservability reads PDS_LOG_FORMAT, PDS_LOG_LEVEL and PDS_METRICS_ADDRESS (called by LoadConfig).
func (c *Config) loadObservability(getenv Getenv) error {
	o := &c.Observability
	switch f := strings.ToLower(strings.TrimSpace(getenv("PDS_LOG_FORMAT"))); f {
	case "", LogFormatText:
		o.LogFormat = LogFormatText
	case LogFormatJSON:
		o.LogFormat = LogFormatJSON
	default:
		return fmt.Errorf("PDS_LOG_FORMAT: %q is not text or json", f)
	}
	o.LogLevel = slog.LevelInfo
	if v := strings.TrimSpace(getenv("PDS_LOG_LEVEL")); v != "" {
		switch strings.ToLower(v) {
		case "debug", "info", "warn", "error":
		default:
			return fmt.Errorf("PDS_LOG_LEVEL: %q is not debug, info, warn or error", v)
		}
		if err := o.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return fmt.Errorf("PDS_LOG_LEVEL: %w", err)
		}
	}
	if a := strings.TrimSpace(getenv("PDS_METRICS_ADDRESS")); a != "" {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("PDS_METRICS_ADDRESS: %q is not host:port (e.g. 127.0.0.1:9464): %w", a, err)
		}
		o.MetricsAddress = a
	}
	return nil
}

// NewLogger is the server's logger as configured: text or JSON lines to w at the configured level, with the
// request_id of the request a line is logged for (package requestid).
func (o ObservabilityConfig) NewLogger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: o.LogLevel}
	var h slog.Handler
	if o.LogFormat == LogFormatJSON {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(requestid.Handler(h))
}
