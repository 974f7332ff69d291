package plcserver_test

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/identity/plcserver"
	"github.com/pdsgo/pds/internal/testplc"
)

// signedGenesis builds n signed genesis ops (outside the timer: signing is
// the client's cost).
func signedGenesis(b *testing.B, n int) (dids []string, ops []*plc.Operation, f *fixture) {
	f = newFixture(b)
	for i := 0; i < n; i++ {
		g := plc.NewGenesis(f.sign, []string{f.didKey(f.rot)}, "bench.test", "http://localhost:2583")
		g.AlsoKnownAs = append(g.AlsoKnownAs, "at://n"+itoa(i)+".test")
		if err := g.Sign(f.rot); err != nil {
			b.Fatal(err)
		}
		dids = append(dids, f.didOf(g))
		ops = append(ops, g)
	}
	return dids, ops, f
}

func itoa(i int) string { return strconv.Itoa(i) }

func post(b *testing.B, url string, body []byte) {
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("POST %s: %d %s", url, resp.StatusCode, msg)
	}
}

func get(b *testing.B, url string) {
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
}

func benchTargets(b *testing.B) map[string]string {
	_, ours := openDirectory(b, plcserver.Options{})
	// The reference (@did-plc/server, in-memory) for scale.
	return map[string]string{"embedded": ours, "reference": testplc.Start(b)}
}

// BenchmarkSubmitGenesis: POST of a new DID's genesis op over loopback HTTP
// (schema, limits, signature, DID hash, one SQLite transaction).
func BenchmarkSubmitGenesis(b *testing.B) {
	for name, base := range benchTargets(b) {
		b.Run(name, func(b *testing.B) {
			dids, ops, _ := signedGenesis(b, b.N)
			bodies := make([][]byte, b.N)
			for i, op := range ops {
				bodies[i], _ = op.MarshalJSON()
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				post(b, base+"/"+dids[i], bodies[i])
			}
		})
	}
}

// BenchmarkSubmitUpdate: POST of an update to a DID with one prior op.
func BenchmarkSubmitUpdate(b *testing.B) {
	for name, base := range benchTargets(b) {
		b.Run(name, func(b *testing.B) {
			dids, ops, f := signedGenesis(b, b.N)
			updates := make([][]byte, b.N)
			for i, g := range ops {
				post(b, base+"/"+dids[i], mustJSONB(b, g))
				u, err := g.Next(func(o *plc.Operation) { o.AlsoKnownAs = []string{"at://updated.test"} })
				if err != nil {
					b.Fatal(err)
				}
				if err := u.Sign(f.rot); err != nil {
					b.Fatal(err)
				}
				updates[i] = mustJSONB(b, u)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				post(b, base+"/"+dids[i], updates[i])
			}
		})
	}
}

// BenchmarkResolve: GET /{did} (the DID document) among 1,000 DIDs.
func BenchmarkResolve(b *testing.B) {
	for name, base := range benchTargets(b) {
		b.Run(name, func(b *testing.B) {
			dids, ops, _ := signedGenesis(b, 1000)
			for i, g := range ops {
				post(b, base+"/"+dids[i], mustJSONB(b, g))
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				get(b, base+"/"+dids[i%len(dids)])
			}
		})
	}
}

func mustJSONB(b *testing.B, op *plc.Operation) []byte {
	body, err := op.MarshalJSON()
	if err != nil {
		b.Fatal(err)
	}
	return body
}
