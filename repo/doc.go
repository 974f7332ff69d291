// Package repo stores atproto repositories, one SQLite file per account.
//
// A [Store] maps a DID to <dir>/<first 2 hex of sha256(did)>/<did>/repo.sqlite and keeps a
// bounded LRU of open repositories. A [Repo] handle obtained with [Store.Repo] must be given
// back with [Repo.Release] (or use [Store.With]); an evicted repository is closed on its last
// release, so eviction never races with operations in flight.
//
// Writes ([Repo.Apply]) are serialised per repository and run in parallel across
// repositories. Each write builds a signed sync 1.1 commit with indigo's atproto/repo and
// atproto/repo/mst, and stores in a SQLite transaction (synchronous=FULL, or NORMAL with
// [WriteRequest.DeferSync] when the caller's log is the durable point): the new blocks, the
// records index, the new head, the deletion of blocks the head no longer references, and an
// outbox row holding the complete #commit event (Seq 0). The sequencer drains the outbox
// ([Repo.PendingEvents], [Repo.TrimOutbox]) after a crash between the two stores, and
// [Repo.ReplayCommits] brings a repository forward to logged commits power loss took from it;
// [Store.Sync] makes deferred commits durable.
//
// Group commit: the writes that queue up while a repository's writer is busy are taken together
// by the next writer, applied in order (each its own commit, chained to the previous, checked
// against the state the previous one left, and failing alone), and stored in ONE transaction:
// one transaction commit for the group. Each is acknowledged, and its OnCommit run in order, once that
// transaction is durable; if it fails, the whole group fails.
//
// The MST of a repository is loaded once (lazily, on the first write) and kept in memory,
// updated in place by every commit; if a commit fails after the tree was mutated, the
// in-memory state is dropped and reloaded from SQLite on the next write, so memory never
// diverges from disk.
//
// Reads (records, CAR export, proofs) run inside a SQLite read transaction and see a
// consistent snapshot without taking the write lock.
//
// Block GC is exact: the old MST nodes a commit replaces are the nodes whose closed key range
// contains an operation's key (see nodesCovering), record blocks are deleted when no record
// row references their CID any more, and the previous commit block is deleted with the head
// update. A repository therefore holds exactly the blocks of its current head.
package repo
