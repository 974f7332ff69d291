// Package plcserver is an embedded did:plc directory: the HTTP API of the
// reference directory (@did-plc/server) over a SQLite operation log
// (identity/plcserver/plcstore), so that a PDS on localhost can create and
// update DIDs without writing anything to the public plc.directory.
//
//	d, err := plcserver.Open(ctx, "data/plc.sqlite", plcserver.Options{})
//	url, err := d.StartLoopback() // or mount d.Handler()
//	client := &plc.Client{URL: url}
//	defer d.Close()
//
// It validates submitted operations the way the reference does: the schema
// of @did-plc/lib (unknown fields dropped), the size and count limits of the
// current server (constraints.ts: 4000 bytes of DAG-CBOR, 10 alsoKnownAs
// entries of at most 258 characters without duplicates, 10 services, 10
// verification methods, id and length limits), 1 to 5 K256/P256 rotation
// keys, the genesis hash, signatures by the rotation keys of the operation
// named by prev, prev pointing into the log, nothing after a tombstone, and
// nullification of recent history by a higher-priority rotation key within
// 72 hours of the first nullified operation.
//
// Deliberate differences from the reference server:
//   - per-DID rate limits of the public directory (10 an hour, 30 a day) are
//     not enforced: this directory serves one local PDS and its tests;
//   - a DID must be exactly did:plc: plus 24 characters (the reference
//     accepts any longer prefix of the hash);
//   - a prev that is not a CID is refused with 400 "Operations not correctly
//     ordered" (the reference fails with 500), and malformed or oversized
//     bodies get 400/413 with a JSON message;
//   - a tombstoned DID answers 404 "DID not available: {did}" on GET /{did}
//     and /{did}/data, as the reference server's code does (some other
//     directory implementations answer 410), so that plc.ErrNotFound holds.
//
// It owns the directory's HTTP handlers and validation rules; signing,
// CBOR, CIDs and DIDs come from identity/plc, storage from plcstore.
package plcserver
