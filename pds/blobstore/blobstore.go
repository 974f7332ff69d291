// Package blobstore keeps the bytes of blobs (images, video) by account DID and CID, on local disk ([Disk]) or in
// an S3-compatible object store ([S3]). It knows nothing of blob metadata (MIME type, which records use a blob,
// temporary or permanent): that lives in each account's repository database (package repo), and the server
// decides when bytes are written or deleted.
//
// A blob is written in two phases so that it never becomes visible half-written: [Put] streams the bytes into a
// new temporary object while computing their CID (CIDv1, raw codec, sha2-256), never holding the blob in memory;
// [Backend.Promote] then moves the temporary object to the blob's key atomically (a rename on disk, copy + delete on
// S3). Promoting over an existing blob is harmless: the key is the hash, so the content is the same.
//
// Taken-down blobs are moved aside by [Backend.Quarantine] (and back by [Backend.Restore]); [Backend.List] walks
// every blob for migrations between backends ([Migrate]).
package blobstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

var (
	// ErrNotFound: no such blob (or temporary object).
	ErrNotFound = errors.New("blob not found")
	// ErrTooLarge: the content is longer than the limit given to Put.
	ErrTooLarge = errors.New("blob too large")
	// ErrInvalidKey: a DID or temporary key that is not safe to use as a key.
	ErrInvalidKey = errors.New("invalid blob key")
)

// Backend stores blob bytes. Implementations are safe for concurrent use. Deleting something that does not exist
// is not an error.
type Backend interface {
	// PutTemp writes everything r yields into a new temporary object and returns its key. size is the length of
	// the content when known in advance, else -1. If r fails, the error is returned and nothing is left behind.
	PutTemp(ctx context.Context, r io.Reader, size int64) (key string, err error)
	// Promote moves the temporary object key to did's blob c, atomically: afterwards the blob is complete or, if
	// Promote failed, untouched.
	Promote(ctx context.Context, key string, did syntax.DID, c cid.Cid) error
	// DeleteTemp deletes a temporary object that will not be promoted.
	DeleteTemp(ctx context.Context, key string) error
	// CleanTemp deletes temporary objects last written before cutoff (left behind by a crash) and returns how
	// many it deleted.
	CleanTemp(ctx context.Context, cutoff time.Time) (int, error)

	// Open returns a reader of did's blob c (ErrNotFound; a quarantined blob is not found).
	Open(ctx context.Context, did syntax.DID, c cid.Cid) (Object, error)
	// OpenQuarantined opens a quarantined blob (moderation review, migration).
	OpenQuarantined(ctx context.Context, did syntax.DID, c cid.Cid) (Object, error)
	// Stat returns the size of did's blob c (ErrNotFound; a quarantined blob is not found).
	Stat(ctx context.Context, did syntax.DID, c cid.Cid) (int64, error)
	// Delete deletes did's blob c, quarantined or not.
	Delete(ctx context.Context, did syntax.DID, c cid.Cid) error
	// DeleteAll deletes every blob of did (account deletion).
	DeleteAll(ctx context.Context, did syntax.DID) error

	// Quarantine makes did's blob c unreadable (takedown) without deleting it; Restore reverses it. Both are
	// idempotent; ErrNotFound when the blob is in neither place.
	Quarantine(ctx context.Context, did syntax.DID, c cid.Cid) error
	Restore(ctx context.Context, did syntax.DID, c cid.Cid) error

	// List calls fn for every blob, quarantined ones included, until fn returns an error.
	List(ctx context.Context, fn func(Entry) error) error
}

// Object is an open blob. Seeking is cheap (ranged reads on S3), so http.ServeContent serves Range requests.
type Object interface {
	io.ReadSeekCloser
	Size() int64
}

// Entry is one blob found by List.
type Entry struct {
	DID         syntax.DID
	CID         cid.Cid
	Size        int64
	Quarantined bool
}

// Temp is a blob written to temporary storage by Put.
type Temp struct {
	Key  string
	CID  cid.Cid // CIDv1, raw, sha2-256 of the content
	Size int64
	Head []byte // the first bytes of the content (up to SniffLen), for MIME detection
}

// SniffLen is how many leading bytes Temp.Head keeps.
const SniffLen = 512

// rawPrefix is the CID prefix of blobs.
var rawPrefix = cid.Prefix{Version: 1, Codec: cid.Raw, MhType: multihash.SHA2_256, MhLength: -1}

// CIDForHash is the blob CID of a sha2-256 digest.
func CIDForHash(sum []byte) cid.Cid {
	mh, err := multihash.Encode(sum, multihash.SHA2_256)
	if err != nil {
		panic(err) // a 32-byte sha2-256 digest always encodes
	}
	return cid.NewCidV1(cid.Raw, mh)
}

// CIDOf is the blob CID of data (tests and small blobs).
func CIDOf(data []byte) cid.Cid {
	c, err := rawPrefix.Sum(data)
	if err != nil {
		panic(err)
	}
	return c
}

// ValidCID reports whether c has the shape of a blob CID (CIDv1, raw, sha2-256).
func ValidCID(c cid.Cid) bool {
	if !c.Defined() || c.Version() != 1 || c.Type() != cid.Raw {
		return false
	}
	p := c.Prefix()
	return p.MhType == multihash.SHA2_256 && p.MhLength == sha256.Size
}

// BodyError wraps an error of the reader given to Put (a client that went away), so callers can tell it from a
// storage failure.
type BodyError struct{ Err error }

func (e *BodyError) Error() string { return "reading blob content: " + e.Err.Error() }
func (e *BodyError) Unwrap() error { return e.Err }

// Put streams r into a new temporary object of b while hashing it. size is the announced length (an HTTP
// Content-Length) or -1; content of another length is refused. At most limit bytes are accepted (ErrTooLarge
// beyond; limit < 0: no limit). The caller must Promote or DeleteTemp the result.
func Put(ctx context.Context, b Backend, r io.Reader, size, limit int64) (*Temp, error) {
	if limit >= 0 && size > limit {
		return nil, ErrTooLarge
	}
	hr := &hashingReader{r: r, h: newHash(), limit: limit, size: size}
	key, err := b.PutTemp(ctx, hr, size)
	if err == nil && !hr.eof && hr.err == nil {
		// A backend told the length reads exactly that much: make sure nothing follows.
		var probe [1]byte
		if n, perr := hr.Read(probe[:]); n > 0 || (perr != io.EOF && hr.err == nil) {
			hr.err = &BodyError{Err: fmt.Errorf("content longer than the announced %d bytes", size)}
		}
	}
	if hr.err != nil {
		// The reader's own failure wins over however the backend reported it.
		if key != "" {
			b.DeleteTemp(context.WithoutCancel(ctx), key)
		}
		return nil, hr.err
	}
	if err != nil {
		return nil, err
	}
	if !hr.eof {
		// A backend that stopped reading early would give a CID of part of the content.
		b.DeleteTemp(context.WithoutCancel(ctx), key)
		return nil, fmt.Errorf("blobstore: backend did not consume the whole content")
	}
	return &Temp{Key: key, CID: CIDForHash(hr.h.Sum(nil)), Size: hr.n, Head: hr.head}, nil
}

func newHash() hash.Hash { return sha256.New() }

// hashingReader hashes, counts and limits what is read through it, and keeps the first SniffLen bytes.
type hashingReader struct {
	r     io.Reader
	h     hash.Hash
	n     int64
	limit int64
	size  int64 // announced length, or -1
	head  []byte
	eof   bool
	err   error // a failure of r or ErrTooLarge, sticky
}

func (hr *hashingReader) Read(p []byte) (int, error) {
	if hr.err != nil {
		return 0, hr.err
	}
	if hr.eof {
		return 0, io.EOF
	}
	n, err := hr.r.Read(p)
	if n > 0 {
		hr.n += int64(n)
		if hr.limit >= 0 && hr.n > hr.limit {
			hr.err = ErrTooLarge
			return 0, hr.err
		}
		hr.h.Write(p[:n])
		if len(hr.head) < SniffLen {
			hr.head = append(hr.head, p[:min(n, SniffLen-len(hr.head))]...)
		}
	}
	if hr.size >= 0 && hr.n > hr.size {
		hr.err = &BodyError{Err: fmt.Errorf("content longer than the announced %d bytes", hr.size)}
		return 0, hr.err
	}
	if err == io.EOF {
		if hr.size >= 0 && hr.n != hr.size {
			hr.err = &BodyError{Err: io.ErrUnexpectedEOF}
			return 0, hr.err
		}
		hr.eof = true
	} else if err != nil {
		hr.err = &BodyError{Err: err}
		return n, hr.err
	}
	return n, err
}

// copyBufSize is the buffer of copies between a request body, a file and the network: large enough that
// syscalls do not dominate (32 KiB, io.Copy's default, costs ~20% at disk speed), small enough for many uploads.
const copyBufSize = 256 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// copyBuffered is io.Copy with a pooled large buffer.
func copyBuffered(dst io.Writer, src io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	// Hide ReadFrom/WriteTo: they would bypass the buffer size choice with a 32 KiB one.
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
}

// checkDID refuses anything that is not a DID: DIDs become path components and object keys.
func checkDID(did syntax.DID) error {
	if _, err := syntax.ParseDID(did.String()); err != nil {
		return fmt.Errorf("%w: %q is not a DID", ErrInvalidKey, did)
	}
	return nil
}
