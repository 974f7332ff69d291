package car

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ipfs/go-cid"
	gocar "github.com/ipld/go-car"
	"github.com/multiformats/go-multihash"
)

var (
	// ErrInvalid: the CAR is malformed or does not hold a valid, complete, correctly signed repository. Wrapped
	// with the reason.
	ErrInvalid = errors.New("invalid repository import")
	// ErrTooLarge: the CAR is larger than the caller's limit.
	ErrTooLarge = errors.New("repository import too large")
)

const (
	// MaxBlockSize bounds one block of a repository CAR: records are at most 1 MiB of DAG-CBOR
	// (atdata.MAX_CBOR_RECORD_SIZE), MST nodes and commits far less.
	MaxBlockSize = 2 << 20
	// maxHeaderSize bounds the CAR header ({roots, version}: one root is ~60 bytes).
	maxHeaderSize = 1024
)

// Invalid wraps ErrInvalid with a reason.
func Invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// countingReader counts what it reads and fails once more than max bytes were read (max 0: no limit).
type countingReader struct {
	r   io.Reader
	n   int64
	max int64
	err error // the underlying reader's failure, kept to tell it from a malformed CAR
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.max > 0 && c.n > c.max {
		return n, ErrTooLarge
	}
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// Read reads a CAR v1 with exactly one root, checking every block's CID against its bytes (CheckBlock), and hands
// each block to put (data is only valid during the call). It returns the root and the bytes read; maxBytes 0 is
// no limit.
func Read(ctx context.Context, r io.Reader, maxBytes int64, put func(context.Context, cid.Cid, []byte) error) (cid.Cid, int64, error) {
	cr := &countingReader{r: r, max: maxBytes}
	br := bufio.NewReaderSize(cr, 64<<10)
	fail := func(err error, what string) error {
		switch {
		case errors.Is(err, ErrTooLarge):
			return ErrTooLarge
		case cr.err != nil:
			return Invalid("could not read the request body: %v", cr.err)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return Invalid("truncated CAR (%s)", what)
		}
		return Invalid("malformed CAR (%s): %v", what, err)
	}

	hl, err := binary.ReadUvarint(br)
	if err != nil {
		if errors.Is(err, io.EOF) && cr.n == 0 && cr.err == nil {
			return cid.Undef, 0, Invalid("empty body: a CAR file is required")
		}
		return cid.Undef, 0, fail(err, "header length")
	}
	if hl == 0 || hl > maxHeaderSize {
		return cid.Undef, 0, Invalid("malformed CAR: header of %d bytes", hl)
	}
	hb := make([]byte, hl)
	if _, err := io.ReadFull(br, hb); err != nil {
		return cid.Undef, 0, fail(err, "header")
	}
	hdr, err := gocar.ReadHeader(bufio.NewReader(io.MultiReader(bytes.NewReader(binary.AppendUvarint(nil, hl)), bytes.NewReader(hb))))
	if err != nil {
		return cid.Undef, 0, Invalid("malformed CAR header: %v", err)
	}
	if hdr.Version != 1 {
		return cid.Undef, 0, Invalid("unsupported CAR version %d", hdr.Version)
	}
	if len(hdr.Roots) != 1 {
		return cid.Undef, 0, Invalid("expected one root, the CAR has %d", len(hdr.Roots))
	}

	buf := make([]byte, 0, 64<<10)
	for i := 0; ; i++ {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return cid.Undef, 0, err
			}
		}
		if _, err := br.Peek(1); err != nil {
			if errors.Is(err, io.EOF) && cr.err == nil {
				break // the end, between blocks
			}
			return cid.Undef, 0, fail(err, "block")
		}
		l, err := binary.ReadUvarint(br)
		if err != nil {
			return cid.Undef, 0, fail(err, "block length")
		}
		if l == 0 {
			return cid.Undef, 0, Invalid("malformed CAR: empty section")
		}
		if l > MaxBlockSize+64 {
			return cid.Undef, 0, Invalid("block too large: %d bytes (at most %d)", l, MaxBlockSize)
		}
		if uint64(cap(buf)) < l {
			buf = make([]byte, l)
		}
		buf = buf[:l]
		if _, err := io.ReadFull(br, buf); err != nil {
			return cid.Undef, 0, fail(err, "block")
		}
		n, c, err := cid.CidFromBytes(buf)
		if err != nil {
			return cid.Undef, 0, Invalid("malformed CAR: invalid CID: %v", err)
		}
		data := buf[n:]
		if err := CheckBlock(c, data); err != nil {
			return cid.Undef, 0, err
		}
		if err := put(ctx, c, data); err != nil {
			return cid.Undef, 0, err
		}
	}
	return hdr.Roots[0], cr.n, nil
}

// CheckBlock verifies that data is the block c names: a repository block is CIDv1 dag-cbor with a sha2-256 hash
// of its bytes, at most MaxBlockSize.
func CheckBlock(c cid.Cid, data []byte) error {
	if len(data) > MaxBlockSize {
		return Invalid("block %s too large: %d bytes (at most %d)", c, len(data), MaxBlockSize)
	}
	if c.Version() != 1 || c.Type() != cid.DagCBOR {
		return Invalid("block %s is not a dag-cbor CIDv1 block", c)
	}
	mh, err := multihash.Decode(c.Hash())
	if err != nil || mh.Code != multihash.SHA2_256 || mh.Length != sha256.Size {
		return Invalid("block %s does not use a sha2-256 hash", c)
	}
	sum := sha256.Sum256(data)
	if !bytes.Equal(sum[:], mh.Digest) {
		return Invalid("block %s: its bytes do not match its CID", c)
	}
	return nil
}
