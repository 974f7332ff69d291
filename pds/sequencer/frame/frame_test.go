package frame

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bluesky-social/indigo/atproto/atdata"
)

// The message header is written by hand: it must be the bytes atdata.MarshalCBOR gives for the same map, and
// read back by ReadHeader (up to its 128-byte limit), for every length of type name CBOR encodes differently.
func TestMessageHeaderMatchesMarshalCBOR(t *testing.T) {
	for _, typ := range []string{"#commit", "#sync", "#identity", "#account", "#info", "", strings.Repeat("x", 23),
		strings.Repeat("y", 24), strings.Repeat("v", 128), strings.Repeat("z", 255), strings.Repeat("w", 256)} {
		want, err := atdata.MarshalCBOR(map[string]any{"op": int64(1), "t": typ})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		writeMessageHeader(&buf, typ)
		if !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("header for %q: %x, want %x", typ, buf.Bytes(), want)
		}
		op, got, err := ReadHeader(bytes.NewReader(buf.Bytes()))
		if len(typ) > 128 { // ReadHeader's limit
			if err == nil {
				t.Fatalf("ReadHeader accepted a %d-byte type", len(typ))
			}
			continue
		}
		if err != nil || op != 1 || got != typ {
			t.Fatalf("ReadHeader: op %d, t %q, %v; want 1, %q", op, got, err, typ)
		}
	}
}

// TestRealFramesRoundTrip: the frames a test server sent (the fuzz seeds) decode, and encoding what was decoded
// gives the server's bytes back: the codec the crash replay relies on reads exactly what the firehose writes.
func TestRealFramesRoundTrip(t *testing.T) {
	paths, _ := filepath.Glob("testdata/fuzz/FuzzDecodeFrame/real-*")
	if len(paths) < 8 {
		t.Fatalf("%d real frames in testdata", len(paths))
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitN(string(b), "\n", 3)
		quoted := strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")")
		s, err := strconv.Unquote(quoted)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		raw := []byte(s)
		d, err := Decode(raw)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		var again []byte
		if d.Op == -1 {
			again = EncodeError(d.ErrName, d.ErrMsg)
		} else if again, err = Encode(d.Type, d.Body()); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, raw) {
			t.Errorf("%s: re-encoded frame differs from the server's", p)
		}
	}
}
