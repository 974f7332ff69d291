// Package frame encodes and decodes com.atproto.sync.subscribeRepos frames: a DAG-CBOR header ({t, op: 1} for a
// message, {op: -1} for an error) followed by the DAG-CBOR body. The sequencer encodes every event once, stores
// the frame and decodes its logged #commit events again after a crash (repo.ReplayCommits); the test clients
// (internal/testpds) decode what the firehose sends with Decode.
//
// It holds only the codec: no database, no connection, so its fuzz target runs without SQLite linked in.
package frame
