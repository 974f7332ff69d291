package frame

import (
	"bytes"
	"testing"
)

// FuzzDecodeFrame: arbitrary bytes as a subscribeRepos frame through Decode (the header reader and the typed
// DAG-CBOR bodies the sequencer's crash replay and the test clients decode): no panic, and a decoded message
// survives the round trip: encoding it gives a frame that decodes to the same type and seq and encodes to the
// same bytes again (the encoder's output is a fixed point); a decoded error frame re-encodes to the same name
// and message. Seeds: real frames of a test server (testdata/fuzz/FuzzDecodeFrame/real-*: #identity, #account,
// #commit with creates and a delete, #sync, an error frame), plus #info and error frames made here.
func FuzzDecodeFrame(f *testing.F) {
	f.Add(EncodeInfo("OutdatedCursor", "Requested cursor exceeded limit. Possibly missing events"))
	f.Add(EncodeError("FutureCursor", "Cursor in the future."))
	f.Add(EncodeError("ConsumerTooSlow", ""))
	f.Add([]byte{0xa2, 0x61, 't', 0x67, '#', 'c', 'o', 'm', 'm', 'i', 't', 0x62, 'o', 'p', 0x01, 0xa0})
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := Decode(raw)
		if err != nil {
			return
		}
		if d.Op == -1 {
			d2, err := Decode(EncodeError(d.ErrName, d.ErrMsg))
			if err != nil || d2.ErrName != d.ErrName || d2.ErrMsg != d.ErrMsg {
				t.Fatalf("error frame %q %q does not round-trip: %+v, %v", d.ErrName, d.ErrMsg, d2, err)
			}
			return
		}
		e1, err := Encode(d.Type, d.Body())
		if err != nil {
			return // a body the encoder refuses (cbor-gen's limits are tighter on the way out)
		}
		d2, err := Decode(e1)
		if err != nil {
			t.Fatalf("a re-encoded %s frame does not decode: %v", d.Type, err)
		}
		if d2.Type != d.Type || d2.Seq != d.Seq {
			t.Fatalf("round trip changed the frame: %s seq %d -> %s seq %d", d.Type, d.Seq, d2.Type, d2.Seq)
		}
		e2, err := Encode(d2.Type, d2.Body())
		if err != nil || !bytes.Equal(e1, e2) {
			t.Fatalf("the encoding of a %s frame is not a fixed point (%v)", d.Type, err)
		}
	})
}
