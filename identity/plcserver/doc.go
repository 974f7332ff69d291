// Package plcserver is an embedded did:plc directory: the HTTP API of the
// reference directory (@did-plc/server) over a SQLite operation log
// (identity/plcserver/plcstore), so that a PDS on localhost can create and
// update DIDs without writing anything to the public plc.directory.
//
// It validates submitted operations the way the reference does: the schema
// of @did-plc/lib, the size and count limits of the current server
// (constraints.ts), the genesis hash, signatures by the rotation keys of the
// previous operation, prev pointing into the log, tombstones ending the log,
// and nullification of recent history by a higher-priority rotation key
// within 72 hours. Per-DID rate limits of the public directory are not
// enforced: this directory serves one local PDS.
//
// It owns the directory's HTTP handlers and validation rules; signing,
// CBOR, CIDs and DIDs come from identity/plc, storage from plcstore.
package plcserver
