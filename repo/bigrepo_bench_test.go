package repo

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/atdata"
	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/bluesky-social/indigo/atproto/syntax"
)

// Large-repository benchmarks (docs/performance.md, "Large repositories"). PDS_BENCH_RECORDS sets the size of
// the large repository (default 10,000); it is built once through Store.Apply in commits of MaxOps records and
// cached under $TMPDIR/pdsgo-bigrepo-v1-<N>/ (1M records: ~5 minutes, 656 MB; delete it by hand). Every
// benchmark run works on a fresh copy of it, and compares with an empty repository (records=0):
//
//	PDS_BENCH_RECORDS=1000000 go test ./repo -run '^$' -bench 'BigRepo' -benchtime 1500x -timeout 60m
const bigRepoDID = syntax.DID("did:plc:bigrepobench")

func bigRepoSize(b *testing.B) int {
	n := 10_000
	if v := os.Getenv("PDS_BENCH_RECORDS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	return n
}

// bigRepoRecord is the i-th record of the seeded repository: likes, posts and follows interleaved in time (TID
// rkeys increasing with i), with bodies like the real ones (100–200 bytes of DAG-CBOR).
func bigRepoRecord(b testing.TB, i int, rkey syntax.TID) WriteOp {
	created := time.Unix(1_700_000_000+int64(i), 0).UTC().Format("2006-01-02T15:04:05.000Z")
	var coll syntax.NSID
	var rec map[string]any
	switch i % 10 {
	case 0, 1, 2:
		coll = "app.bsky.feed.post"
		rec = map[string]any{"$type": string(coll), "text": fmt.Sprintf("post number %d, with a few words of text", i), "createdAt": created}
	case 3, 4:
		coll = "app.bsky.graph.follow"
		rec = map[string]any{"$type": string(coll), "subject": fmt.Sprintf("did:plc:%024d", i), "createdAt": created}
	default:
		coll = "app.bsky.feed.like"
		rec = map[string]any{"$type": string(coll), "createdAt": created, "subject": map[string]any{
			"uri": fmt.Sprintf("at://did:plc:%024d/app.bsky.feed.post/%s", i, rkey),
			"cid": "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm",
		}}
	}
	data, err := atdata.MarshalCBOR(rec)
	if err != nil {
		b.Fatal(err)
	}
	return WriteOp{Action: ActionCreate, Collection: coll, RKey: syntax.RecordKey(rkey.String()), Record: data}
}

// cachedBigRepo returns the directory of a Store holding bigRepoDID with n records (none for n = 0), and its
// signing key, building it the first time.
func cachedBigRepo(b *testing.B, n int) (string, atcrypto.PrivateKey) {
	b.Helper()
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("pdsgo-bigrepo-v1-%d", n))
	if raw, err := os.ReadFile(filepath.Join(dir, "key")); err == nil {
		key, err := atcrypto.ParsePrivateBytesK256(raw)
		if err != nil {
			b.Fatal(err)
		}
		return filepath.Join(dir, "store"), key
	}
	ctx := context.Background()
	build := dir + ".building"
	os.RemoveAll(build)
	start := time.Now()
	s, err := OpenStore(filepath.Join(build, "store"), StoreOptions{})
	if err != nil {
		b.Fatal(err)
	}
	k, err := atcrypto.GeneratePrivateKeyK256()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Create(ctx, bigRepoDID, k); err != nil {
		b.Fatal(err)
	}
	base := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	err = s.With(ctx, bigRepoDID, func(r *Repo) error {
		for i := 0; i < n; i += MaxOps {
			ops := make([]WriteOp, 0, MaxOps)
			for j := i; j < min(n, i+MaxOps); j++ {
				ops = append(ops, bigRepoRecord(b, j, syntax.NewTID(base+int64(j)*1000, 0)))
			}
			// Trim the outbox as the sequencer would: a real repository holds only unsequenced events.
			head, err := r.Head(ctx)
			if err != nil {
				return err
			}
			if _, err := r.Apply(ctx, WriteRequest{Ops: ops, Signer: k, TrimOutboxThrough: head.Rev}); err != nil {
				return err
			}
			if i%100_000 == 0 && i > 0 {
				fmt.Fprintf(os.Stderr, "seeding %s: %d records, %s\n", dir, i, time.Since(start).Round(time.Second))
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(build, "key"), k.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(build, dir); err != nil {
		b.Fatal(err)
	}
	b.Logf("built a %d-record repository in %s", n, time.Since(start).Round(time.Second))
	return filepath.Join(dir, "store"), k
}

// copyBigRepo copies the cached store of n records to a fresh directory and opens it.
func copyBigRepo(b *testing.B, n int) (*Store, atcrypto.PrivateKey) {
	b.Helper()
	src, key := cachedBigRepo(b, n)
	dst := filepath.Join(b.TempDir(), "store")
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o750)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(filepath.Join(dst, rel))
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		b.Fatal(err)
	}
	s, err := OpenStore(dst, StoreOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s, key
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// processCPU is this process's user+system CPU time from /proc/self/stat (0 where there is none).
func processCPU() time.Duration {
	raw, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	s := string(raw)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// heapDelta is the heap in use now (after a GC) minus base, or 0.
func heapDelta(base uint64) uint64 {
	h := heapInUse()
	return h - min(h, base)
}

func bigRepoSizes(b *testing.B) []int { return []int{0, bigRepoSize(b)} }

// BenchmarkBigRepoWrite: steady-state one-record commits (createRecord's repo work: a new post with a TID
// rkey, signed, one transaction; sync=full waits for its fsync, sync=deferred is WriteRequest.DeferSync, the
// server's writes, made durable by the firehose log) into a repository of N records, after one unmeasured
// write. Reports the process's CPU per write (cpu-ms/op, background checkpoints included: steadier than time
// on a shared machine), the Go heap held after the run (the store with the repository open, the writer's tree)
// and the nodes of the writer's tree in memory. The update-random case updates a random existing record
// instead (writes far from the recent keys, which load their path on demand).
func BenchmarkBigRepoWrite(b *testing.B) {
	for _, n := range bigRepoSizes(b) {
		for _, c := range []struct {
			kind     string
			deferred bool
		}{{"create", false}, {"create", true}, {"update-random", false}, {"update-random", true}} {
			kind := c.kind
			if kind == "update-random" && n == 0 {
				continue
			}
			sync := "full"
			if c.deferred {
				sync = "deferred"
			}
			b.Run(fmt.Sprintf("records=%d/%s/sync=%s", n, kind, sync), func(b *testing.B) {
				ctx := context.Background()
				s, key := copyBigRepo(b, n)
				base := heapInUse()
				r, err := s.Repo(ctx, bigRepoDID)
				if err != nil {
					b.Fatal(err)
				}
				defer r.Release()
				clock := syntax.NewTIDClock(0)
				seedBase := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
				rng := rand.New(rand.NewPCG(1, uint64(n)))
				op := func(i int) WriteOp {
					if kind == "create" {
						return bigRepoRecord(b, i, clock.Next())
					}
					j := rng.IntN(n)
					w := bigRepoRecord(b, j, syntax.NewTID(seedBase+int64(j)*1000, 0))
					edited, err := atdata.MarshalCBOR(map[string]any{"$type": string(w.Collection), "text": fmt.Sprintf("edited %d", i), "createdAt": "2024-01-01T00:00:00.000Z"})
					if err != nil {
						b.Fatal(err)
					}
					w.Action, w.Record = ActionUpdate, edited
					return w
				}
				if _, err := r.Apply(ctx, WriteRequest{Ops: []WriteOp{op(0)}, Signer: key, DeferSync: c.deferred}); err != nil {
					b.Fatal(err)
				}
				ops := make([]WriteOp, b.N)
				for i := range ops {
					ops[i] = op(i + 1)
				}
				cpu0 := processCPU()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := r.Apply(ctx, WriteRequest{Ops: ops[i : i+1], Signer: key, DeferSync: c.deferred}); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(processCPU()-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
				ops = nil
				b.ReportMetric(float64(heapDelta(base))/1e6, "heap-MB")
				r.wmu.Lock()
				b.ReportMetric(float64(countNodes(r.st.tree.Root)), "tree-nodes")
				r.wmu.Unlock()
			})
		}
	}
}

// countNodes counts the nodes of a tree that are in memory.
func countNodes(n *mst.Node) int {
	c := 1
	for _, e := range n.Entries {
		if e.Child != nil {
			c += countNodes(e.Child)
		}
	}
	return c
}

// BenchmarkBigRepoFirstWrite: the first write after the repository is opened (Store.Repo on a Store that
// has not opened it yet, then one one-record commit): what an account's first post after a while costs.
// ns/op is the commit; open-ms the Store.Repo call before it (SQLite open, schema check, statements).
func BenchmarkBigRepoFirstWrite(b *testing.B) {
	for _, n := range bigRepoSizes(b) {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			ctx := context.Background()
			s, key := copyBigRepo(b, n)
			dir := s.dir
			s.Close()
			clock := syntax.NewTIDClock(0)
			var open time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				s, err := OpenStore(dir, StoreOptions{})
				if err != nil {
					b.Fatal(err)
				}
				op := bigRepoRecord(b, i, clock.Next())
				b.StartTimer()
				t0 := time.Now()
				r, err := s.Repo(ctx, bigRepoDID)
				if err != nil {
					b.Fatal(err)
				}
				open += time.Since(t0)
				if _, err := r.Apply(ctx, WriteRequest{Ops: []WriteOp{op}, Signer: key}); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				r.Release()
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.StopTimer()
			b.ReportMetric(float64(open.Milliseconds())/float64(b.N), "open-ms")
		})
	}
}

// BenchmarkBigRepoFullTreeLoad: what the writer did before it loaded its tree lazily: the whole MST of the
// repository read from SQLite (one query per node) and kept in memory. Reports the heap the tree holds.
func BenchmarkBigRepoFullTreeLoad(b *testing.B) {
	n := bigRepoSize(b)
	b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
		ctx := context.Background()
		s, _ := copyBigRepo(b, n)
		r, err := s.Repo(ctx, bigRepoDID)
		if err != nil {
			b.Fatal(err)
		}
		defer r.Release()
		head, err := r.Head(ctx)
		if err != nil {
			b.Fatal(err)
		}
		var tree *mst.Tree
		var heap uint64
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			tree = nil
			base := heapInUse()
			b.StartTimer()
			if tree, err = mst.LoadTreeFromStore(ctx, blockSource{r.q()}, head.Data); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			heap = heapDelta(base)
			b.StartTimer()
		}
		b.StopTimer()
		b.ReportMetric(float64(heap)/1e6, "heap-MB")
		b.ReportMetric(float64(countNodes(tree.Root)), "tree-nodes")
		runtime.KeepAlive(tree)
	})
}
