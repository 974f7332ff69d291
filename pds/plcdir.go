package pds

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/pdsgo/pds/identity/plcserver"
)

// embeddedPLC is a localhost server's own PLC directory (Config.EmbeddedPLC), served on its own loopback
// listener so that a second local server can share it.
type embeddedPLC struct {
	dir  *plcserver.Directory
	srv  *http.Server
	once sync.Once
}

// startEmbeddedPLC opens <data>/plc.sqlite, serves it on cfg.EmbeddedPLCAddr and sets cfg.PLCURL to it.
func startEmbeddedPLC(ctx context.Context, cfg *Config) (*embeddedPLC, error) {
	dir, err := plcserver.Open(ctx, cfg.EmbeddedPLCPath(), plcserver.Options{Version: Version})
	if err != nil {
		return nil, fmt.Errorf("embedded PLC directory: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.EmbeddedPLCAddr)
	if err != nil {
		dir.Close()
		return nil, fmt.Errorf("embedded PLC directory: %w (is another local PDS running? share its directory with "+
			"PDS_DID_PLC_URL=http://%s, or set PDS_EMBEDDED_PLC_ADDR=127.0.0.1:0 for a free port)", err, cfg.EmbeddedPLCAddr)
	}
	e := &embeddedPLC{dir: dir, srv: &http.Server{Handler: dir.Handler(), ReadHeaderTimeout: 10 * time.Second}}
	go e.srv.Serve(ln)
	cfg.PLCURL = "http://" + ln.Addr().String()
	return e, nil
}

func (e *embeddedPLC) close() {
	if e == nil {
		return
	}
	e.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.srv.Shutdown(ctx)
		e.dir.Close()
	})
}
