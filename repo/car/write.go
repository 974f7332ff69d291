package car

import (
	"encoding/binary"
	"io"

	"github.com/ipfs/go-cid"
	carutil "github.com/ipld/go-car/util"
)

// Writer writes a CAR v1 stream.
type Writer struct{ w io.Writer }

// NewWriter writes the header of a CAR with the single root and returns the writer of its blocks.
func NewWriter(w io.Writer, root cid.Cid) (*Writer, error) {
	if _, err := w.Write(Header(root)); err != nil {
		return nil, err
	}
	return &Writer{w}, nil
}

// Put writes one block.
func (cw *Writer) Put(c cid.Cid, data []byte) error {
	return carutil.LdWrite(cw.w, c.Bytes(), data)
}

// Header is the length-prefixed CAR v1 header {"roots": [root], "version": 1} in DAG-CBOR, written by hand:
// go-car's WriteHeader goes through reflection (refmt), ~1% of a write's CPU for every commit's event.
func Header(root cid.Cid) []byte {
	link := root.Bytes()
	h := make([]byte, 0, 32+len(link))
	h = append(h, 0xa2)                          // map(2)
	h = append(h, 0x65, 'r', 'o', 'o', 't', 's') // "roots" (keys sorted by length, then bytes)
	h = append(h, 0x81, 0xd8, 0x2a)              // array(1), tag(42): a CID link
	h = appendCBORHead(h, 2, uint64(len(link)+1))
	h = append(h, 0x00) // the identity multibase prefix of a binary CID
	h = append(h, link...)
	h = append(h, 0x67, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x01) // "version": 1
	return append(binary.AppendUvarint(nil, uint64(len(h))), h...)
}

// appendCBORHead appends a CBOR head of major type major with argument n, in its shortest form.
func appendCBORHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= 0xff:
		return append(b, m|24, byte(n))
	case n <= 0xffff:
		return append(b, m|25, byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	}
}
