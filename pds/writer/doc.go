// Package writer is the write path: every change to an account's repository that the firehose must carry
// goes through a Writer, which orders the repository's commit and the sequencer's event (mark the account
// dirty, commit, log the event while the repository lock is held, acknowledge once the event is durable),
// brings a repository that fell behind the log forward (catch-up), and recovers after a crash or power loss
// at start (replaying lost commits, sequencing commits the stream missed, resynchronizing after a lost log).
// It also imports whole repositories (migration), which bypass the stream while the account is deactivated.
//
// Storage itself is package repo's (repo.Repo.Apply, Import, ReplayCommits); the event log is package
// sequencer's. Its errors are mapped to XRPC errors by package xrpcerr (xrpcerr.Repo).
//
// It may not read sessions, handles or takedown state: what it needs from accounts and moderation comes in
// through Options (Accounts for the account rows, CheckCommit for the blob-takedown check), wired in
// pds/server.go. It starts no goroutines.
package writer
