// Package firehose serves com.atproto.sync.subscribeRepos (websocket subscribers: replay from a cursor, then
// the live tail, with no gap and no duplicate) and runs the firehose's background loops: retention (pruning
// events older than the backfill window, after the repos are durable) and requestCrawl notifications to the
// configured relays.
//
// The events themselves are package sequencer's (written by the write path, package writer); this package
// only reads them. It may not touch accounts or repositories beyond making the repos durable before a prune.
package firehose
