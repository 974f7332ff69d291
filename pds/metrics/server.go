package metrics

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves the registry in the Prometheus exposition formats (text, or protobuf/OpenMetrics when the
// scraper asks), at most two scrapes at a time.
func (m *Metrics) Handler(log *slog.Logger) http.Handler {
	opts := promhttp.HandlerOpts{
		Registry:            m.reg, // promhttp_metric_handler_errors_total
		MaxRequestsInFlight: 2,
		Timeout:             30 * time.Second,
		ErrorHandling:       promhttp.ContinueOnError, // a failed collector must not hide the others
	}
	if log != nil {
		opts.ErrorLog = slogPrintln{log}
	}
	return promhttp.HandlerFor(m.reg, opts)
}

type slogPrintln struct{ log *slog.Logger }

func (l slogPrintln) Println(v ...any) { l.log.Warn("metrics: " + fmt.Sprint(v...)) }

// Server is the /metrics listener (PDS_METRICS_ADDRESS): its own port, so the public listener never serves
// the metrics and a firewall or a loopback address keeps them private.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Listen serves /metrics on addr (host:port; port 0 picks one) until Close.
func (m *Metrics) Listen(addr string, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("PDS_METRICS_ADDRESS: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler(log))
	s := &Server{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && log != nil {
			log.Error("metrics listener stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr is the address the listener is bound to.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the listener and closes its connections.
func (s *Server) Close() error { return s.srv.Close() }
