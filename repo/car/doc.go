// Package car reads and writes the CAR v1 files of atproto repositories, and checks what an imported repository
// holds without storing anything: every block's hash against its CID ([Read], [CheckBlock]), the signed commit
// ([VerifyCommit]), the shape of the MST under it ([Walker]: canonical nodes, key order, heights, every record
// present) and the record blocks ([BlobRefs], [CheckNesting]).
//
// Package repo stores what passes (importRepo, the takeover's adoption, the firehose events it writes); this
// package may not import it, nor any database: its fuzz targets then run without SQLite linked into the test
// binary. Every refusal wraps [ErrInvalid] with a reason safe to show the client; a body over the caller's
// limit is [ErrTooLarge].
package car
