// Package sequencer is the firehose log: it gives every repo commit and every identity and account change a
// strictly increasing seq with no gaps, stores the serialized frame in sequencer.sqlite, and fans new events out
// to live subscribers.
//
// Writes are group-committed: events are queued by Enqueue (in commit order, under the account's repo lock) and
// a single goroutine stores everything queued in one transaction. The log is the write path's durable point: a
// commit is stored in its repo without fsync (with its event in the repo's outbox), queued here, and
// acknowledged once stored here. Accounts are marked dirty here before their first such commit (MarkDirty,
// Dirty), and recovery at start either sequences outbox rows the log lacks or replays logged commits a repo
// lost (CommitsAfter).
package sequencer

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	"github.com/bluesky-social/indigo/atproto/syntax"
	lexutil "github.com/bluesky-social/indigo/lex/util"
	cbg "github.com/whyrusleeping/cbor-gen"

	"github.com/pdsgo/pds/internal/sqlitedb"
	"github.com/pdsgo/pds/pds/sequencer/frame"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Event types, as the "t" of the frame header.
const (
	TypeCommit   = "#commit"
	TypeSync     = "#sync"
	TypeIdentity = "#identity"
	TypeAccount  = "#account"
)

var ErrClosed = errors.New("sequencer closed")

// Event is one sequenced event.
type Event struct {
	Seq   int64
	DID   syntax.DID
	Type  string
	Time  time.Time
	Frame []byte // header + body, ready to send
}

// body is what every firehose message type is: cbor-gen marshalling plus a settable seq.
type body interface {
	cbg.CBORMarshaler
}

type queued struct {
	did  syntax.DID
	typ  string
	rev  string // commits: the rev, recorded as the account's last sequenced rev
	msg  body
	seq  func(int64) // sets the message's seq before marshalling
	done chan error  // optional: closed once durable
	// gate, if set, is closed when what the event describes is visible elsewhere (a commit's repo transaction
	// is done): the event is stored at once but published (head, subscribers) only after its gate.
	gate <-chan struct{}
}

// publishLine is an unbounded FIFO from the writer to the publisher: the writer must never wait for the
// publisher, which waits for gates that a group commit closes only after queueing all its events.
type publishLine struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []storedBatch
	closed bool
}

func (l *publishLine) put(b storedBatch) {
	l.mu.Lock()
	l.items = append(l.items, b)
	l.mu.Unlock()
	l.cond.Signal()
}

func (l *publishLine) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.cond.Signal()
}

// take returns the next batch; false once closed and drained.
func (l *publishLine) take() (storedBatch, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.items) == 0 && !l.closed {
		l.cond.Wait()
	}
	if len(l.items) == 0 {
		return storedBatch{}, false
	}
	b := l.items[0]
	l.items[0] = storedBatch{}
	l.items = l.items[1:]
	return b, true
}

// stored is a batch in the log waiting to be published in order (publisher).
type storedBatch struct {
	events []*Event
	revs   map[syntax.DID]string
	gates  []<-chan struct{}
	head   int64
	answer []*queued // answered (done <- nil) once published
}

// Options tune the sequencer.
type Options struct {
	// Floor is the lowest seq the log may continue above (a log whose head is higher keeps it). The server
	// passes a time-based floor when the log file is new but accounts exist (the file was lost), or was
	// restored from a backup (pds/backup), so seq never goes back for relays.
	Floor  int64
	Logger *slog.Logger
	// Metrics, when set, is told each stored batch's size and each subscriber dropped for being too slow.
	Metrics Metrics
}

// Metrics receives the sequencer's measurements (pds/metrics). Calls are made on the writer's and the
// publisher's goroutines and must not block.
type Metrics interface {
	Batch(events int) // a batch of events stored in one transaction
	SlowConsumer()    // a subscription closed with ErrTooSlow
}

// Sequencer is the firehose log.
type Sequencer struct {
	db      *sql.DB
	stmts   storeStmts // the writer's statements, prepared once at Open
	log     *slog.Logger
	metrics Metrics // nil: none
	queue   chan *queued
	wg      sync.WaitGroup

	// Close first closes stopping (enqueuers blocked on a full queue and a writer retrying a failing disk give
	// up), then takes closeMu, so no send to queue is in flight, and closes closed: the writer's final drain
	// then sees every event that was accepted, and no caller waits forever on done.
	stopping  chan struct{}
	stopOnce  sync.Once
	closed    chan struct{}
	closeMu   sync.RWMutex
	isClosing bool
	gaveUp    error // set by the writer when it stopped retrying at Close

	stored  int64       // the writer's head: the highest seq in the file (writer goroutine only)
	publish publishLine // writer -> publisher, in seq order

	mu      sync.Mutex
	head    int64               // the published head: every event up to it is visible to readers and subscribers
	dirty   map[syntax.DID]bool // accounts marked dirty in the file
	subs    map[*Subscription]struct{}
	seqRevs map[syntax.DID]string // rev of each account's last sequenced commit, since start
	watch   []chan<- struct{}

	ckpt *sqlitedb.Checkpointer
}

// checkpointEvery is the number of stored events (~1 WAL page each, a batch adding ~2 more) after which a
// background checkpoint runs: about SQLite's default of 1,000 pages. After each, the writer starts the WAL
// over (restart 0 in sqlitedb.NewCheckpointer): every commit of the log is fsynced, and an fsync that extends
// the file costs about twice one that overwrites it (~0.3 against ~0.12 ms here).
const checkpointEvery = 600

// Open opens the log at path and starts the writer goroutine.
func Open(ctx context.Context, path string, opts Options) (*Sequencer, error) {
	migrations, _ := fs.Sub(migrationFiles, "migrations")
	// The writer's transaction is every write's acknowledgement: WAL checkpoints run beside it, not in it.
	db, err := sqlitedb.Open(ctx, path, migrations, 4, sqlitedb.AutoCheckpointOff)
	if err != nil {
		return nil, err
	}
	s := &Sequencer{
		db:       db,
		ckpt:     sqlitedb.NewCheckpointer(db, checkpointEvery, 0),
		log:      opts.Logger,
		metrics:  opts.Metrics,
		queue:    make(chan *queued, 4096),
		stopping: make(chan struct{}),
		closed:   make(chan struct{}),
		dirty:    map[syntax.DID]bool{},
		subs:     map[*Subscription]struct{}{},
		seqRevs:  map[syntax.DID]string{},
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if err := s.stmts.prepare(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	var metaHead, maxSeq sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = 'head'").Scan(&metaHead); err != nil && !errors.Is(err, sql.ErrNoRows) {
		db.Close()
		return nil, err
	}
	if err := db.QueryRowContext(ctx, "SELECT max(seq) FROM event").Scan(&maxSeq); err != nil {
		db.Close()
		return nil, err
	}
	s.head = max(metaHead.Int64, maxSeq.Int64)
	if opts.Floor > s.head {
		s.head = opts.Floor
		if _, err := db.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES ('head', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", s.head); err != nil {
			db.Close()
			return nil, err
		}
	}
	rows, err := db.QueryContext(ctx, "SELECT did FROM repo_state WHERE dirty = 1")
	if err != nil {
		db.Close()
		return nil, err
	}
	for rows.Next() {
		var did syntax.DID
		if err := rows.Scan(&did); err == nil {
			s.dirty[did] = true
		}
	}
	rows.Close()
	s.stored = s.head
	s.publish.cond = sync.NewCond(&s.publish.mu)
	s.wg.Add(2)
	go s.run()
	go s.publisher()
	return s, nil
}

// Close stops the writer after storing everything queued so far.
func (s *Sequencer) Close() error {
	s.stopOnce.Do(func() { close(s.stopping) })
	s.closeMu.Lock()
	if s.isClosing {
		s.closeMu.Unlock()
		return nil
	}
	s.isClosing = true
	close(s.closed)
	s.closeMu.Unlock()
	s.wg.Wait()
	s.mu.Lock()
	for sub := range s.subs {
		sub.close(ErrClosed)
	}
	s.mu.Unlock()
	s.ckpt.Close()
	return s.db.Close()
}

// Head is the highest seq published: durable, and visible to subscribers and replays (a commit's event is
// published once its repo transaction is done, see EnqueueCommitGated).
func (s *Sequencer) Head() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.head
}

// MarkDirty durably records that did may get commits in its repo outbox that are not sequenced yet. It must
// be called before the repo commits; it writes only the first time per account (until ClearDirty).
func (s *Sequencer) MarkDirty(ctx context.Context, did syntax.DID) error {
	s.mu.Lock()
	known := s.dirty[did]
	s.mu.Unlock()
	if known {
		return nil
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO repo_state (did, dirty) VALUES (?, 1)
		ON CONFLICT (did) DO UPDATE SET dirty = 1`, did); err != nil {
		return err
	}
	s.mu.Lock()
	s.dirty[did] = true
	s.mu.Unlock()
	return nil
}

// DirtyAccount is an account that may have unsequenced commits, with the rev of its last sequenced commit.
type DirtyAccount struct {
	DID     syntax.DID
	LastRev string
}

// Dirty lists the accounts marked dirty (used by crash recovery at start, before any write).
func (s *Sequencer) Dirty(ctx context.Context) ([]DirtyAccount, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT did, last_rev FROM repo_state WHERE dirty = 1 ORDER BY did")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DirtyAccount
	for rows.Next() {
		var d DirtyAccount
		if err := rows.Scan(&d.DID, &d.LastRev); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// ClearDirty unmarks accounts whose outbox is known to be fully sequenced (after recovery).
func (s *Sequencer) ClearDirty(ctx context.Context, dids ...syntax.DID) error {
	if len(dids) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil) // one transaction: one fsync however many accounts
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, did := range dids {
		if _, err := tx.ExecContext(ctx, "UPDATE repo_state SET dirty = 0 WHERE did = ?", did); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.mu.Lock()
	for _, did := range dids {
		delete(s.dirty, did)
	}
	s.mu.Unlock()
	return nil
}

// LastRev is the rev of the account's last sequenced commit ("" if none).
func (s *Sequencer) LastRev(ctx context.Context, did syntax.DID) (string, error) {
	var rev string
	err := s.db.QueryRowContext(ctx, "SELECT last_rev FROM repo_state WHERE did = ?", did).Scan(&rev)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return rev, err
}

// Flush waits until every event queued before the call is stored (nil), or storing failed for good.
func (s *Sequencer) Flush(ctx context.Context) error {
	select {
	case err := <-s.enqueue(&queued{}):
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// DirtyDIDs lists the accounts currently marked dirty.
func (s *Sequencer) DirtyDIDs() []syntax.DID {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]syntax.DID, 0, len(s.dirty))
	for did := range s.dirty {
		out = append(out, did)
	}
	return out
}

// SequencedRev is the rev of the account's last commit sequenced since start ("" if none): repo outbox rows up
// to it are no longer needed.
func (s *Sequencer) SequencedRev(did syntax.DID) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seqRevs[did]
}

// Forget drops an account's sequencing state (account deleted).
func (s *Sequencer) Forget(ctx context.Context, did syntax.DID) error {
	_, err := s.db.ExecContext(ctx, "DELETE FROM repo_state WHERE did = ?", did)
	s.mu.Lock()
	delete(s.dirty, did)
	s.mu.Unlock()
	return err
}

func now() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000Z") }

// EnqueueCommit queues a #commit event. Call it in commit order per account (under the repo lock).
func (s *Sequencer) EnqueueCommit(evt *comatproto.SyncSubscribeRepos_Commit) <-chan error {
	return s.EnqueueCommitGated(evt, nil)
}

// EnqueueCommitGated queues a #commit whose repo transaction may still be running: the event is stored (and
// the returned channel answered) without waiting, so the log's fsync overlaps the repo's transaction, but it
// is published (Head, subscribers, replays) only once gate is closed, so nobody reads an event before the
// repo has the commit. Close gate whether the transaction succeeded or not: the logged event is the truth
// either way (a repo that failed to store it is brought forward from the log).
func (s *Sequencer) EnqueueCommitGated(evt *comatproto.SyncSubscribeRepos_Commit, gate <-chan struct{}) <-chan error {
	if evt.Time == "" {
		evt.Time = now()
	}
	if evt.Blobs == nil {
		evt.Blobs = []lexutil.LexLink{}
	}
	return s.enqueue(&queued{did: syntax.DID(evt.Repo), typ: TypeCommit, rev: evt.Rev, msg: evt, seq: func(n int64) { evt.Seq = n }, gate: gate})
}

// EnqueueSync queues a #sync event (blocks: a CAR holding only the commit block).
func (s *Sequencer) EnqueueSync(did syntax.DID, rev string, blocks []byte) <-chan error {
	evt := &comatproto.SyncSubscribeRepos_Sync{Did: did.String(), Rev: rev, Blocks: blocks, Time: now()}
	return s.enqueue(&queued{did: did, typ: TypeSync, rev: rev, msg: evt, seq: func(n int64) { evt.Seq = n }})
}

// EnqueueIdentity queues an #identity event.
func (s *Sequencer) EnqueueIdentity(did syntax.DID, handle string) <-chan error {
	evt := &comatproto.SyncSubscribeRepos_Identity{Did: did.String(), Time: now()}
	if handle != "" {
		evt.Handle = &handle
	}
	return s.enqueue(&queued{did: did, typ: TypeIdentity, msg: evt, seq: func(n int64) { evt.Seq = n }})
}

// EnqueueAccount queues an #account event; status is "" for active accounts.
func (s *Sequencer) EnqueueAccount(did syntax.DID, active bool, status string) <-chan error {
	evt := &comatproto.SyncSubscribeRepos_Account{Did: did.String(), Active: active, Time: now()}
	if status != "" {
		evt.Status = &status
	}
	return s.enqueue(&queued{did: did, typ: TypeAccount, msg: evt, seq: func(n int64) { evt.Seq = n }})
}

func (s *Sequencer) enqueue(q *queued) <-chan error {
	q.done = make(chan error, 1)
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.isClosing {
		q.done <- ErrClosed
		return q.done
	}
	select {
	case s.queue <- q: // the writer drains the queue until closed, which Close closes after this send
	case <-s.stopping:
		q.done <- ErrClosed
	}
	return q.done
}

// run is the single writer: it takes everything queued, stores it in one transaction, then publishes.
func (s *Sequencer) run() {
	defer s.wg.Done()
	defer s.publish.close() // the publisher publishes what was stored, then ends
	for {
		var batch []*queued
		select {
		case q := <-s.queue:
			batch = append(batch, q)
		case <-s.closed:
			// Drain what was queued before Close.
			for {
				select {
				case q := <-s.queue:
					batch = append(batch, q)
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				s.storeWithRetry(batch)
			}
			return
		}
	more:
		for len(batch) < 1000 {
			select {
			case q := <-s.queue:
				batch = append(batch, q)
			default:
				break more
			}
		}
		s.storeWithRetry(batch)
	}
}

// storeWithRetry never drops an event: the stream must stay gap-free and in order, so a failing disk stalls
// the firehose (and is logged) rather than skipping events. Only when closing does it give up, and then it
// fails every later batch too: storing a later commit of an account after dropping an earlier one would
// move the account's last sequenced rev past a commit that start-up recovery must still sequence.
func (s *Sequencer) storeWithRetry(all []*queued) {
	// Barriers (Flush) take no seq: they are answered once everything queued before them is published. Every
	// other event is answered once published too (the publisher answers after the fan-out), so a write
	// acknowledged after its event is on the stream.
	batch := make([]*queued, 0, len(all))
	var barriers []*queued
	for _, q := range all {
		if q.msg == nil {
			barriers = append(barriers, q)
		} else {
			batch = append(batch, q)
		}
	}
	answer := func(err error) {
		for _, q := range batch {
			q.done <- err
		}
		for _, q := range barriers {
			q.done <- err
		}
	}
	if len(batch) == 0 {
		if s.gaveUp != nil {
			answer(s.gaveUp)
		} else {
			s.publish.put(storedBatch{answer: barriers})
		}
		return
	}
	if s.gaveUp != nil {
		answer(s.gaveUp)
		return
	}
	for attempt := 0; ; attempt++ {
		_, err := s.store(batch, barriers)
		if err == nil {
			s.ckpt.Wrote(len(batch) + 2)
			if s.metrics != nil {
				s.metrics.Batch(len(batch))
			}
			return
		}
		s.log.Error("sequencer: storing events failed; retrying", "err", err, "events", len(batch))
		select {
		case <-s.stopping:
			if attempt >= 3 {
				s.gaveUp = fmt.Errorf("%w: storing events failed: %w", ErrClosed, err)
				answer(s.gaveUp)
				return
			}
			time.Sleep(50 * time.Millisecond)
		case <-time.After(time.Duration(min(attempt+1, 10)) * 100 * time.Millisecond):
		}
	}
}

// store writes batch durably and hands it to the publisher, which answers batch and then barriers.
func (s *Sequencer) store(batch, barriers []*queued) ([]*Event, error) {
	head := s.stored
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	ins := tx.StmtContext(ctx, s.stmts.insertEvent)
	events := make([]*Event, 0, len(batch))
	revs := map[syntax.DID]string{}
	t := time.Now()
	for i, q := range batch {
		seq := head + int64(i) + 1
		q.seq(seq)
		frame, err := EncodeFrame(q.typ, q.msg)
		if err != nil {
			return nil, fmt.Errorf("encoding %s for %s: %w", q.typ, q.did, err)
		}
		if _, err := ins.ExecContext(ctx, seq, q.did, q.typ, t.UnixMilli(), frame); err != nil {
			return nil, err
		}
		if q.typ == TypeCommit || q.typ == TypeSync {
			// A #sync announces the repo at its rev: the chain continues from there.
			revs[q.did] = q.rev
		}
		events = append(events, &Event{Seq: seq, DID: q.did, Type: q.typ, Time: t, Frame: frame})
	}
	for did, rev := range revs {
		if _, err := tx.StmtContext(ctx, s.stmts.setLastRev).ExecContext(ctx, did, rev); err != nil {
			return nil, err
		}
	}
	// The head is max(seq) of the events; the meta row only keeps it when pruning deletes them (Prune), so a
	// batch writes no page for it.
	newHead := head + int64(len(batch))
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	s.stored = newHead
	var gates []<-chan struct{}
	for _, q := range batch {
		if q.gate != nil {
			gates = append(gates, q.gate)
		}
	}
	// Never blocks on a gate here: the writer keeps storing (a gate may belong to a group commit whose later
	// events are still waiting to be queued), and the publisher waits instead.
	s.publish.put(storedBatch{events: events, revs: revs, gates: gates, head: newHead, answer: append(batch, barriers...)})
	return events, nil
}

// publisher makes stored batches visible in seq order, each once its gates are closed. The new head and the
// fan-out happen under one lock, so Subscribe's head is exact: a subscriber gets every event above it from
// its queue and none at or below it.
func (s *Sequencer) publisher() {
	defer s.wg.Done()
	for {
		b, ok := s.publish.take()
		if !ok {
			return
		}
		for _, g := range b.gates {
			<-g
		}
		if len(b.events) > 0 {
			s.mu.Lock()
			s.head = b.head
			for did, rev := range b.revs {
				s.seqRevs[did] = rev
			}
			s.publishLocked(b.events)
			s.mu.Unlock()
		}
		for _, q := range b.answer {
			q.done <- nil
		}
	}
}

// EncodeFrame serializes a message frame (frame.Encode).
func EncodeFrame(typ string, msg body) ([]byte, error) { return frame.Encode(typ, msg) }

// ReadHeader reads a frame's CBOR header from r, leaving r at the body (frame.ReadHeader).
func ReadHeader(r io.Reader) (op int64, t string, err error) { return frame.ReadHeader(r) }

// EncodeErrorFrame serializes an error frame (frame.EncodeError).
func EncodeErrorFrame(name, message string) []byte { return frame.EncodeError(name, message) }

// EncodeInfoFrame serializes an #info message (frame.EncodeInfo).
func EncodeInfoFrame(name, message string) []byte { return frame.EncodeInfo(name, message) }

// Events returns up to limit stored events with seq > after, in order.
func (s *Sequencer) Events(ctx context.Context, after int64, limit int) ([]*Event, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT seq, did, type, time, frame FROM event WHERE seq > ? ORDER BY seq LIMIT ?", after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Event
	for rows.Next() {
		var e Event
		var ms int64
		if err := rows.Scan(&e.Seq, &e.DID, &e.Type, &ms, &e.Frame); err != nil {
			return nil, err
		}
		e.Time = time.UnixMilli(ms)
		out = append(out, &e)
	}
	return out, rows.Err()
}

// Oldest is the seq of the oldest stored event (0 when the log is empty).
func (s *Sequencer) Oldest(ctx context.Context) (int64, error) {
	var seq sql.NullInt64
	err := s.db.QueryRowContext(ctx, "SELECT min(seq) FROM event").Scan(&seq)
	return seq.Int64, err
}

// EarliestSince is the seq of the first stored event sequenced at or after t (0 if none).
func (s *Sequencer) EarliestSince(ctx context.Context, t time.Time) (int64, error) {
	var seq sql.NullInt64
	err := s.db.QueryRowContext(ctx, "SELECT min(seq) FROM event WHERE time >= ?", t.UnixMilli()).Scan(&seq)
	return seq.Int64, err
}

// pruneBatch bounds each delete transaction, so pruning a large backlog never holds the write lock (and so
// the group commit) for long.
var pruneBatch = 5000

// Prune deletes events sequenced before before, oldest first; the head (and so the next seq) is unaffected:
// each deleting transaction first records the highest seq in the meta row, which Open reads along with the
// events' max(seq).
func (s *Sequencer) Prune(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		n, err := s.pruneOnce(ctx, before)
		total += n
		if err != nil || n < int64(pruneBatch) {
			return total, err
		}
	}
}

func (s *Sequencer) pruneOnce(ctx context.Context, before time.Time) (int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) SELECT 'head', max(seq) FROM event
		WHERE true HAVING max(seq) IS NOT NULL
		ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)`); err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM event WHERE seq IN
		(SELECT seq FROM event WHERE time < ? ORDER BY seq LIMIT ?)`, before.UnixMilli(), pruneBatch)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	return n, tx.Commit()
}

// PurgeAccount removes what the log holds of a deleted account, as the reference does: every stored event of
// did except its latest (the #account deleted event relays still need to see on replay), and its sequencing
// state. Replays then skip the purged seqs; the head is unaffected.
func (s *Sequencer) PurgeAccount(ctx context.Context, did syntax.DID) error {
	if _, err := s.db.ExecContext(ctx, "DELETE FROM event WHERE did = ? AND seq < (SELECT max(seq) FROM event WHERE did = ?)", did, did); err != nil {
		return err
	}
	if err := s.Forget(ctx, did); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.seqRevs, did)
	s.mu.Unlock()
	return nil
}

// storeStmts are prepared when the log opens, never later: preparing on the pool while a transaction holds a
// connection can wait forever. Statements bound to a transaction with StmtContext are closed with it.
type storeStmts struct {
	insertEvent, setLastRev *sql.Stmt
}

func (st *storeStmts) prepare(ctx context.Context, db *sql.DB) error {
	var err error
	if st.insertEvent, err = db.PrepareContext(ctx, "INSERT INTO event (seq, did, type, time, frame) VALUES (?, ?, ?, ?, ?)"); err != nil {
		return err
	}
	st.setLastRev, err = db.PrepareContext(ctx, `INSERT INTO repo_state (did, last_rev) VALUES (?, ?)
		ON CONFLICT (did) DO UPDATE SET last_rev = excluded.last_rev`)
	return err
}
