// Package takeover turns the data directory of a stopped reference PDS (npm @atproto/pds, read through
// package refpds) into this server's data directory, so that the same hostname, DIDs, handles, signing keys,
// passwords, app passwords, sessions, invites, preferences, repositories, blobs and firehose seq carry over
// without a PLC operation (`pds takeover`, docs/takeover.md).
//
// It owns the mapping between the two layouts and nothing else: it writes only through this server's store
// packages (accountstore.AdoptAccounts, repo.Store.Adopt, sequencer.Adopt, blobstore, blobgc) and holds no SQL.
// Run first checks everything it can without writing (that is all --check does), then builds the new directory
// beside its destination and renames it into place: a failure leaves no destination directory, and the source
// directory is never written (with --move, blob files moved out of it are moved back).
package takeover
