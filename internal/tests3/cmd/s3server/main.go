// Command s3server serves an in-memory S3 API (gofakes3) on 127.0.0.1 until it is stopped, with the buckets
// named on the command line created. It prints "S3_LISTENING <url>" once it accepts connections.
//
//	go run ./internal/tests3/cmd/s3server -port 24790 blobs
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

func main() {
	port := flag.Int("port", 0, "port on 127.0.0.1 (0: any)")
	flag.Parse()
	backend := s3mem.New()
	for _, b := range flag.Args() {
		if err := backend.CreateBucket(b); err != nil {
			log.Fatalf("s3server: bucket %s: %v", b, err)
		}
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: gofakes3.New(backend).Server(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("S3_LISTENING http://%s\n", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
