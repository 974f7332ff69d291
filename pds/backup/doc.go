// Package backup backs the whole server up, continuously and incrementally, encrypted, to an S3-compatible
// bucket or a directory, and restores and verifies it.
//
// A round (Backup.Round) copies, as transactionally consistent SQLite snapshots (VACUUM INTO, see
// internal/sqlitedb.Snapshot): account.sqlite, blobgc.sqlite when present, secrets.json, the firehose log as
// the events since the previous round (sequencer.ExportSince; a whole copy now and then), and the repository of
// every account with events after the previous round's seq (or new since); the other accounts' entries point
// at their earlier objects. Disk blobs are
// content-addressed and uploaded once. Every object is encrypted on this machine with age (filippo.io/age)
// before it leaves it; its name is the SHA-256 of its plaintext (blobs: their CID), which the manifest records
// and restore checks, so a substituted object fails as a flipped byte does. The round ends with its manifest
// (rounds/<ID>), encrypted too.
//
// Bucket layout, under the URL's prefix:
//
//	key.age              with a passphrase key: the X25519 identity objects are encrypted to, itself encrypted
//	                     with the passphrase (scrypt once per process, not per object)
//	rounds/<ID>          manifests (gzipped JSON), ID = the round's UTC time (20261207T150405.123Z)
//	objects/<sha256>.zst SQLite snapshots, log segments and secrets.json, compressed (zstd) before encryption
//	objects/<sha256>     the same, uncompressed (rounds made before compression)
//	blobs/<cid>          blob bytes
//
// Restore writes a data directory and a marker (RestoredMarker) that makes the next start continue the
// firehose's seq above every seq ever served (sequencer.Options.Floor) and announce every active account's head
// with #sync, as after a lost log.
//
// It owns the bucket's layout and the backup's crypto; it reads the data directory's files only through
// snapshots and the owning packages' readers (repo.ReadSnapshot, sequencer.ExportSince), and writes to a live
// data directory only its scratch space (<data>/backup-tmp).
package backup
