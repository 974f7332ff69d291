package accounts

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/internal/keyedmutex"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/mailer"
	"github.com/pdsgo/pds/pds/sequencer"
	"github.com/pdsgo/pds/pds/writer"
	"github.com/pdsgo/pds/repo"
)

// Config is what accounts needs of the server's configuration.
type Config struct {
	PublicURL            string
	Hostname             string // named in emails
	ServiceDID           string
	ServiceHandleDomains []string
	RotationKey          *atcrypto.PrivateKeyK256
	// RecoveryDIDKey is an operator-held rotation key added to new did:plc accounts ("" for none).
	RecoveryDIDKey string
	// DataDirectory holds the spool files of account exports.
	DataDirectory string
	// ResolverTimeout bounds one identity resolution (DNS, HTTPS, DID document).
	ResolverTimeout time.Duration
}

// Blobs is what accounts needs of the blob store (implemented by the server over its blob service).
type Blobs interface {
	// DeleteAccountBlobs removes every blob of a deleted account.
	DeleteAccountBlobs(ctx context.Context, did syntax.DID) error
	// SetQuarantine moves a blob's bytes into quarantine (a takedown) or back.
	SetQuarantine(ctx context.Context, did syntax.DID, c cid.Cid, quarantined bool) error
	// HasBytes reports whether the blob's bytes are stored (false, nil when they are not).
	HasBytes(ctx context.Context, did syntax.DID, c cid.Cid) (bool, error)
	// Open reads a stored blob.
	Open(ctx context.Context, did syntax.DID, c cid.Cid) (io.ReadCloser, error)
	// StoreArchived stores one blob of an account archive under its declared type, checking its content
	// against its CID.
	StoreArchived(ctx context.Context, did syntax.DID, c cid.Cid, mimeType string, body io.Reader, size int64) error
}

// Deps are the stores and services a Service uses.
type Deps struct {
	Store *accountstore.Store
	Repos *repo.Store
	Seq   *sequencer.Sequencer
	PLC   *plc.Client
	IDs   *Directories
	// Mailer sends the email tokens and the operator's messages.
	Mailer mailer.Mailer
	Blobs  Blobs
	// Writer is the write path: repository imports and the head-commit #sync blocks go through it.
	Writer *writer.Writer
	Log    *slog.Logger
	// Metrics, when set, counts deleted accounts.
	Metrics Metrics
}

// Metrics receives account lifecycle counts (pds/metrics).
type Metrics interface {
	AccountDeleted()
}

// Service is the account service.
type Service struct {
	*accountstore.Store
	cfg       Config
	d         Deps
	log       *slog.Logger
	locks     keyedmutex.Map[syntax.DID]
	takedowns takedownCache
	revoker   SessionRevoker // OAuth sessions (SetSessionRevoker)
}

// New returns a Service.
func New(cfg Config, d Deps) *Service {
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	return &Service{Store: d.Store, cfg: cfg, d: d, log: log}
}

// Lock takes the lock of an account's identity and status changes.
func (s *Service) Lock(did syntax.DID) (unlock func()) { return s.locks.Lock(did) }
