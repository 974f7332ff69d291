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
// The writer keeps the MST of the head in memory, updated in place by every commit, and loads it
// lazily (lazytree.go): it starts from the root node, and each write first loads from SQLite the
// nodes its keys may touch, so its commits are those of a complete tree. Once the tree holds more
// than a bound of nodes (a few MB) and everything is stored, it is trimmed back to its root: memory
// per open repository is bounded whatever the repository's size, and the first write after opening
// a repository of a million records reads a handful of nodes, not the whole tree. If a commit
// fails after the tree was mutated, the in-memory state is dropped and reloaded from SQLite on the
// next write, so memory never diverges from disk.
//
// Reads (records, CAR export, proofs) run inside a SQLite read transaction and see a
// consistent snapshot without taking the write lock.
//
// Block GC is exact: the old MST nodes a commit replaces are the nodes whose closed key range
// contains an operation's key (see nodesCovering), record blocks are deleted when no record
// row references their CID any more, and the previous commit block is deleted with the head
// update. A repository therefore holds exactly the blocks of its current head.
package repo
