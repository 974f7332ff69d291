package pds_test

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pdsgo/pds/internal/testpds"
)

// Blob benchmarks (docs/blobs.md): go test ./pds/ -run '^$' -bench Blob -benchtime 5x

// BenchmarkBlobUpload50MB: uploadBlob throughput on the disk store (MB/s), the body sent with its length.
func BenchmarkBlobUpload50MB(b *testing.B) {
	p := testpds.Start(b, testpds.Options{})
	alice := p.CreateAccount("alice")
	data := testpds.RandomBytes(1, 50_000_000)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		r := testpds.UploadBlob(b, p, alice.AccessJwt, "video/mp4", bytes.NewReader(data))
		if r.Status != http.StatusOK {
			b.Fatal(r)
		}
	}
}

// BenchmarkBlobDownload50MB: getBlob throughput on the disk store (MB/s).
func BenchmarkBlobDownload50MB(b *testing.B) {
	p := testpds.Start(b, testpds.Options{})
	alice := p.CreateAccount("alice")
	data := testpds.RandomBytes(2, 50_000_000)
	ref := testpds.UploadBlobOK(b, p, alice.AccessJwt, "application/x-large", data)
	if r := testpds.CreateRecord(b, p, alice, "com.example.attachment", map[string]any{"file": ref}); r.Status != http.StatusOK {
		b.Fatal(r)
	}
	u := p.URL + "/xrpc/com.atproto.sync.getBlob?did=" + alice.DID + "&cid=" + ref.CID()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		resp, err := p.Client.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != int64(len(data)) || resp.StatusCode != http.StatusOK {
			b.Fatalf("getBlob: %d, %d bytes, %v", resp.StatusCode, n, err)
		}
	}
}

// BenchmarkBlobUploadRSS uploads a 100 MB blob (chunked, from a generator: the client holds 1 MiB) and reports
// the growth of the process's resident memory during the upload (client and server share the process).
func BenchmarkBlobUploadRSS(b *testing.B) {
	p := testpds.Start(b, testpds.Options{})
	alice := p.CreateAccount("alice")
	const size = 100_000_000
	block := testpds.RandomBytes(3, 1<<20)
	var peak atomic.Int64
	var worst int64
	for i := range b.N {
		runtime.GC()
		debug.FreeOSMemory()
		base := rssBytes(b)
		peak.Store(base)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				if v := rssBytes(b); v > peak.Load() {
					peak.Store(v)
				}
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
			}
		}()
		r := testpds.UploadBlob(b, p, alice.AccessJwt, "application/x-large", testpds.HideLength{R: &generator{block: block, left: size, seed: byte(i)}})
		close(stop)
		<-done
		if r.Status != http.StatusOK {
			b.Fatal(r)
		}
		worst = max(worst, peak.Load()-base)
	}
	b.ReportMetric(float64(worst)/1e6, "MB-rss-growth") // the largest over the iterations, the first (cold) included
	b.SetBytes(size)
}

// generator yields left bytes: block repeated, with a counter mixed in so no two blocks are equal.
type generator struct {
	block []byte
	off   int
	left  int64
	n     uint32
	seed  byte
}

func (g *generator) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	if g.off == len(g.block) {
		g.off = 0
		g.n++
		g.block[0], g.block[1], g.block[2], g.block[3] = byte(g.n), byte(g.n>>8), byte(g.n>>16), g.seed
	}
	n := copy(p, g.block[g.off:])
	if int64(n) > g.left {
		n = int(g.left)
	}
	g.off += n
	g.left -= int64(n)
	return n, nil
}

// rssBytes reads the process's resident set size.
func rssBytes(tb testing.TB) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb * 1024
		}
	}
	tb.Fatal("no VmRSS in /proc/self/status")
	return 0
}
