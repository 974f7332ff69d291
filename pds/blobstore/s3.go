package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config configures an S3-compatible backend (the reference PDS's PDS_BLOBSTORE_S3_* settings).
type S3Config struct {
	Bucket          string
	Region          string // default us-east-1
	Endpoint        string // URL, e.g. http://127.0.0.1:9000; "" = AWS
	ForcePathStyle  bool   // path-style URLs (bucket in the path); otherwise chosen by endpoint (virtual-host on AWS)
	AccessKeyID     string // "" = the AWS environment variables, ~/.aws/credentials, then instance roles
	SecretAccessKey string
	UploadTimeout   time.Duration // bound on writing one temporary object (the client's upload); 0 = none
	// PartSize is the multipart part size, and so the memory held per upload in progress (default and minimum
	// 5 MiB, S3's minimum).
	PartSize int64
	// Transport replaces the HTTP transport (tests).
	Transport http.RoundTripper
}

// S3 stores blobs in a bucket with the reference PDS's key layout, so a bucket can be shared with it:
//
//	blocks/<did>/<cid>        blobs
//	quarantine/<did>/<cid>    taken-down blobs
//	tmp/<random key>          uploads in progress
//
// Objects are written once under tmp/ (multipart, streamed, PartSize of memory) and promoted by a server-side
// copy and a delete, so a blob key never holds a partial object. Reads stat the object once, then fetch ranges
// lazily: a Range request costs one ranged GET, not the whole object.
type S3 struct {
	cli     *minio.Client
	bucket  string
	timeout time.Duration
	part    uint64
}

const (
	s3Blobs      = "blocks/"
	s3Quarantine = "quarantine/"
	s3Tmp        = "tmp/"
	minPartSize  = 5 << 20
)

// NewS3 returns an S3 backend. It does not create the bucket.
func NewS3(cfg S3Config) (*S3, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("blobstore: S3 bucket is required")
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	host, secure := "s3."+region+".amazonaws.com", true
	if region == "us-east-1" {
		host = "s3.amazonaws.com"
	}
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("blobstore: S3 endpoint %q must be an http(s) URL", cfg.Endpoint)
		}
		host, secure = u.Host, u.Scheme == "https"
	}
	var creds *credentials.Credentials
	if cfg.AccessKeyID != "" {
		creds = credentials.NewStaticV4(cfg.AccessKeyID, cfg.SecretAccessKey, "")
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.FileAWSCredentials{},
			&credentials.IAM{},
		})
	}
	lookup := minio.BucketLookupAuto
	if cfg.ForcePathStyle {
		lookup = minio.BucketLookupPath
	}
	cli, err := minio.New(host, &minio.Options{
		Creds:        creds,
		Secure:       secure,
		Region:       region,
		BucketLookup: lookup,
		Transport:    cfg.Transport,
		MaxRetries:   3,
	})
	if err != nil {
		return nil, fmt.Errorf("blobstore: %w", err)
	}
	part := max(cfg.PartSize, minPartSize)
	return &S3{cli: cli, bucket: cfg.Bucket, timeout: cfg.UploadTimeout, part: uint64(part)}, nil
}

// Client is the underlying minio client (tests create buckets with it).
func (s *S3) Client() *minio.Client { return s.cli }

func blobKey(did syntax.DID, c cid.Cid) string { return s3Blobs + did.String() + "/" + c.String() }
func quarantineKey(did syntax.DID, c cid.Cid) string {
	return s3Quarantine + did.String() + "/" + c.String()
}

func isNotFound(err error) bool {
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return er.Code == "NoSuchKey" || er.Code == "NotFound" || er.StatusCode == http.StatusNotFound
	}
	return false
}

func (s *S3) PutTemp(ctx context.Context, r io.Reader, size int64) (string, error) {
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	key := newTempKey()
	_, err := s.cli.PutObject(ctx, s.bucket, s3Tmp+key, r, size, minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		PartSize:    s.part,
		// The content is hashed once already (its CID); signing it too would hash it again, and plain-HTTP
		// endpoints would get aws-chunked bodies that some S3 implementations store undecoded.
		DisableContentSha256: true,
	})
	if err != nil {
		// minio aborts a failed multipart upload, and a failed PUT should store nothing, but a server that keeps
		// the part of a body it got before the connection broke would leave a stray object: remove it.
		s.cli.RemoveObject(context.WithoutCancel(ctx), s.bucket, s3Tmp+key, minio.RemoveObjectOptions{})
		return "", err
	}
	return key, nil
}

func (s *S3) tempKey(key string) (string, error) {
	if len(key) != 32 || strings.Trim(key, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%w: temporary key %q", ErrInvalidKey, key)
	}
	return s3Tmp + key, nil
}

// move copies src to dst on the server, then deletes src.
func (s *S3) move(ctx context.Context, src, dst string) error {
	_, err := s.cli.CopyObject(ctx,
		minio.CopyDestOptions{Bucket: s.bucket, Object: dst},
		minio.CopySrcOptions{Bucket: s.bucket, Object: src})
	if err != nil {
		if isNotFound(err) {
			return ErrNotFound
		}
		return err
	}
	return s.cli.RemoveObject(ctx, s.bucket, src, minio.RemoveObjectOptions{})
}

func (s *S3) Promote(ctx context.Context, key string, did syntax.DID, c cid.Cid) error {
	if err := checkDID(did); err != nil {
		return err
	}
	src, err := s.tempKey(key)
	if err != nil {
		return err
	}
	if err := s.move(ctx, src, blobKey(did, c)); err != nil {
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("%w: temporary object %s", ErrNotFound, key)
		}
		return err
	}
	return nil
}

func (s *S3) DeleteTemp(ctx context.Context, key string) error {
	k, err := s.tempKey(key)
	if err != nil {
		return err
	}
	return s.cli.RemoveObject(ctx, s.bucket, k, minio.RemoveObjectOptions{})
}

func (s *S3) CleanTemp(ctx context.Context, cutoff time.Time) (int, error) {
	ctx, cancel := context.WithCancel(ctx) // stops minio's listing goroutines on an early return
	defer cancel()
	n := 0
	for obj := range s.cli.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s3Tmp, Recursive: true}) {
		if obj.Err != nil {
			return n, obj.Err
		}
		if obj.LastModified.Before(cutoff) {
			if err := s.cli.RemoveObject(ctx, s.bucket, obj.Key, minio.RemoveObjectOptions{}); err != nil {
				return n, err
			}
			n++
		}
	}
	// Multipart uploads cut off by a crash keep their parts (and their cost) until aborted.
	for up := range s.cli.ListIncompleteUploads(ctx, s.bucket, s3Tmp, true) {
		if up.Err != nil {
			break // not every S3 implementation lists multipart uploads
		}
		if up.Initiated.Before(cutoff) {
			s.cli.RemoveIncompleteUpload(ctx, s.bucket, up.Key)
		}
	}
	return n, nil
}

func (s *S3) Open(ctx context.Context, did syntax.DID, c cid.Cid) (Object, error) {
	if err := checkDID(did); err != nil {
		return nil, err
	}
	return s.open(ctx, blobKey(did, c))
}

func (s *S3) OpenQuarantined(ctx context.Context, did syntax.DID, c cid.Cid) (Object, error) {
	if err := checkDID(did); err != nil {
		return nil, err
	}
	return s.open(ctx, quarantineKey(did, c))
}

func (s *S3) open(ctx context.Context, key string) (Object, error) {
	info, err := s.cli.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		if isNotFound(err) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	return &s3Object{s: s, ctx: ctx, key: key, size: info.Size}, nil
}

func (s *S3) Stat(ctx context.Context, did syntax.DID, c cid.Cid) (int64, error) {
	if err := checkDID(did); err != nil {
		return 0, err
	}
	info, err := s.cli.StatObject(ctx, s.bucket, blobKey(did, c), minio.StatObjectOptions{})
	if err != nil {
		if isNotFound(err) {
			return 0, ErrNotFound
		}
		return 0, err
	}
	return info.Size, nil
}

// s3Object reads an object from the current offset with one ranged GET, reopened only after a Seek. No ETag
// condition: a blob key's content never changes (re-uploads write the same bytes, with another ETag).
type s3Object struct {
	s    *S3
	ctx  context.Context
	key  string
	size int64
	off  int64
	body io.ReadCloser
}

func (o *s3Object) Size() int64 { return o.size }

func (o *s3Object) Read(p []byte) (int, error) {
	if o.off >= o.size {
		return 0, io.EOF
	}
	if o.body == nil {
		opts := minio.GetObjectOptions{}
		if err := opts.SetRange(o.off, o.size-1); err != nil {
			return 0, err
		}
		body, _, _, err := (&minio.Core{Client: o.s.cli}).GetObject(o.ctx, o.s.bucket, o.key, opts)
		if err != nil {
			return 0, err
		}
		o.body = body
	}
	n, err := o.body.Read(p)
	o.off += int64(n)
	if err == io.EOF && o.off < o.size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (o *s3Object) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = o.off + offset
	case io.SeekEnd:
		abs = o.size + offset
	default:
		return 0, errors.New("blobstore: invalid whence")
	}
	if abs < 0 {
		return 0, errors.New("blobstore: negative position")
	}
	if abs != o.off && o.body != nil {
		o.body.Close()
		o.body = nil
	}
	o.off = abs
	return abs, nil
}

func (o *s3Object) Close() error {
	if o.body != nil {
		err := o.body.Close()
		o.body = nil
		return err
	}
	return nil
}

func (s *S3) Delete(ctx context.Context, did syntax.DID, c cid.Cid) error {
	if err := checkDID(did); err != nil {
		return err
	}
	for _, k := range []string{blobKey(did, c), quarantineKey(did, c)} {
		if err := s.cli.RemoveObject(ctx, s.bucket, k, minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
			return err
		}
	}
	return nil
}

func (s *S3) DeleteAll(ctx context.Context, did syntax.DID) error {
	if err := checkDID(did); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, prefix := range []string{s3Blobs + did.String() + "/", s3Quarantine + did.String() + "/"} {
		for obj := range s.cli.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if obj.Err != nil {
				return obj.Err
			}
			if err := s.cli.RemoveObject(ctx, s.bucket, obj.Key, minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
				return err
			}
		}
	}
	return nil
}

// moveIdempotent moves from to to; done already (to exists, from does not) is success.
func (s *S3) moveIdempotent(ctx context.Context, from, to string) error {
	err := s.move(ctx, from, to)
	if errors.Is(err, ErrNotFound) {
		if _, serr := s.cli.StatObject(ctx, s.bucket, to, minio.StatObjectOptions{}); serr == nil {
			return nil
		}
		return ErrNotFound
	}
	return err
}

func (s *S3) Quarantine(ctx context.Context, did syntax.DID, c cid.Cid) error {
	if err := checkDID(did); err != nil {
		return err
	}
	return s.moveIdempotent(ctx, blobKey(did, c), quarantineKey(did, c))
}

func (s *S3) Restore(ctx context.Context, did syntax.DID, c cid.Cid) error {
	if err := checkDID(did); err != nil {
		return err
	}
	return s.moveIdempotent(ctx, quarantineKey(did, c), blobKey(did, c))
}

func (s *S3) List(ctx context.Context, fn func(Entry) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, prefix := range []string{s3Blobs, s3Quarantine} {
		for obj := range s.cli.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if obj.Err != nil {
				return obj.Err
			}
			didStr, cidStr, ok := strings.Cut(strings.TrimPrefix(obj.Key, prefix), "/")
			did, err := syntax.ParseDID(didStr)
			if !ok || err != nil {
				continue
			}
			c, err := cid.Decode(cidStr)
			if err != nil {
				continue
			}
			if err := fn(Entry{DID: did, CID: c, Size: obj.Size, Quarantined: prefix == s3Quarantine}); err != nil {
				return err
			}
		}
	}
	return nil
}
