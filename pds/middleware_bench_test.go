package pds

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/metrics"
	"github.com/pdsgo/pds/pds/requestid"
	"github.com/pdsgo/pds/xrpc"
)

// BenchmarkRequestMiddleware measures what requestMiddleware adds to a request (an XRPC method whose handler
// does nothing), served through echo in process: "none" is echo and the router alone, "ids" the middleware
// with metrics off (the default), "metrics" with them on (docs/performance.md).
func BenchmarkRequestMiddleware(b *testing.B) {
	log := slog.New(requestid.Handler(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})))
	for _, mode := range []string{"none", "ids", "metrics"} {
		b.Run(mode, func(b *testing.B) {
			s := &Server{cfg: &Config{}, log: log}
			e := echo.New()
			if mode == "metrics" {
				s.metrics = metrics.New("bench")
			}
			if mode != "none" {
				e.Use(s.requestMiddleware())
			}
			r := xrpc.NewRouter(e, nil)
			r.Query("com.atproto.repo.getRecord", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
			if s.metrics != nil {
				s.metrics.Routes([]string{"com.atproto.repo.getRecord"}, nil, nil)
			}
			req := httptest.NewRequest(http.MethodGet, "/xrpc/com.atproto.repo.getRecord", nil)
			b.ReportAllocs()
			b.ResetTimer()
			w := &discardWriter{h: http.Header{}}
			for range b.N {
				clear(w.h)
				e.ServeHTTP(w, req)
				if w.code != http.StatusOK {
					b.Fatal(w.code)
				}
			}
		})
	}
}

// discardWriter is a ResponseWriter that costs nothing (httptest.ResponseRecorder copies the headers on
// WriteHeader, which would be most of what is measured).
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
