package repo

import (
	"bufio"
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/atdata"
	"github.com/bluesky-social/indigo/atproto/syntax"
)

// BenchmarkImport imports a generated repository (default 100,000 records of about 1 KB, like the posts of a
// large account; PDS_BENCH_IMPORT_RECORDS changes the count, e.g. 1000000 for a ~1 GB CAR) and reports the CAR
// size, the time per import and the process's peak RSS during the import (VmHWM, reset before each import):
//
//	go test ./repo -run '^$' -bench BenchmarkImport -benchtime 1x
//	PDS_BENCH_IMPORT_RECORDS=1000000 go test ./repo -run '^$' -bench BenchmarkImport -benchtime 1x -timeout 60m
func BenchmarkImport(b *testing.B) {
	n := 100_000
	if v := os.Getenv("PDS_BENCH_IMPORT_RECORDS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	did := syntax.DID("did:plc:importbench")
	oldKey, newKey := newKey(b), newKey(b)
	carPath := filepath.Join(b.TempDir(), "repo.car")
	start := time.Now()
	genImportCAR(b, carPath, did, oldKey, n)
	fi, err := os.Stat(carPath)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %d records, %.1f MB CAR in %s", n, float64(fi.Size())/1e6, time.Since(start).Round(time.Second))

	s := newTestStore(b, StoreOptions{})
	createOnly(b, s, did, newKey)
	opts := ImportOptions{VerifyKey: pubKey(b, oldKey), Signer: newKey}
	var peak int64
	runtime.GC()
	debug.FreeOSMemory() // the generator's tree is garbage now: keep it out of the import's RSS
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := os.Open(carPath)
		if err != nil {
			b.Fatal(err)
		}
		resetPeakRSS()
		res, err := s.Import(ctx, did, bufio.NewReaderSize(f, 1<<20), opts)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		if res.Records != int64(n) {
			b.Fatalf("imported %d records", res.Records)
		}
		peak = max(peak, peakRSS())
	}
	b.StopTimer()
	b.ReportMetric(float64(fi.Size())/1e6, "CAR-MB")
	if peak > 0 {
		b.ReportMetric(float64(peak)/1e6, "peakRSS-MB")
	}
}

// genImportCAR writes the CAR of a repository of n records (posts with 50-1,500 characters of text, about 1 KB
// of DAG-CBOR on average), made by the write path in commits of MaxOps records and exported like getRepo.
func genImportCAR(b *testing.B, path string, did syntax.DID, key atcrypto.PrivateKey, n int) {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	s, err := OpenStore(dir, StoreOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	defer s.Close()
	if _, err := s.Create(ctx, did, key); err != nil {
		b.Fatal(err)
	}
	r, err := s.Repo(ctx, did)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Release()
	rng := rand.New(rand.NewSource(1))
	clock := syntax.NewTIDClock(0)
	words := strings.Fields("the quick brown fox jumps over a lazy dog while seven wizards quietly hex every jolly bard")
	for done := 0; done < n; {
		ops := make([]WriteOp, 0, MaxOps)
		for len(ops) < MaxOps && done < n {
			var text strings.Builder
			for want := 50 + rng.Intn(1450); text.Len() < want; {
				text.WriteString(words[rng.Intn(len(words))])
				text.WriteByte(' ')
			}
			rec, err := atdata.MarshalCBOR(map[string]any{
				"$type": "app.bsky.feed.post", "text": text.String(), "langs": []any{"en"},
				"createdAt": time.Unix(1700000000+int64(done), 0).UTC().Format(time.RFC3339),
			})
			if err != nil {
				b.Fatal(err)
			}
			ops = append(ops, WriteOp{Action: ActionCreate, Collection: postNSID, RKey: syntax.RecordKey(clock.Next().String()), Record: rec})
			done++
		}
		if _, err := r.Apply(ctx, WriteRequest{Ops: ops, Signer: key, TrimOutboxThrough: "zzzzzzzzzzzzz"}); err != nil {
			b.Fatal(err)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if err := r.WriteCAR(ctx, w, ""); err != nil {
		b.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// resetPeakRSS resets the kernel's high-water mark of this process's resident set (Linux >= 4.0).
func resetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS is VmHWM in bytes (0 where /proc is unavailable).
func peakRSS() int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}
