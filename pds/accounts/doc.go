// Package accounts owns what happens to an account as a whole: lookup, passwords, handles and identity
// resolution (DID documents, PLC operations signed with the server's rotation key), activation, deactivation and
// deletion (with the job that purges expired deactivated accounts), takedowns (cached in memory), and the
// operator's account archives (export and import between two servers).
//
// A [Service] embeds the account store, so a plain row lookup is s.AccountByDID; the rest is methods that
// change an account and announce it on the firehose. Each change to an account's identity or status holds the
// account's lock ([Service.Lock]). It signs people in on the OAuth pages ([Service.OAuthAccounts]: account
// password only) and ends their OAuth sessions through [SessionRevoker] when the password changes or the account
// is deactivated, taken down or deleted.
//
// It touches the repository store only for whole repositories (create, import, export, delete, and opening one
// for a sync read: SyncRepo, OpenRepo) and the sequencer only for account-level events (#identity, #account,
// #sync, and a new account's first commit); record writes are the write path's (pds/writer, which it uses for
// repository imports and #sync blocks). It may not reach into the blob store, the firehose's subscribers or
// the proxy: what it needs of blobs comes through [Blobs], wired by the server. Its store and directory errors
// are mapped to XRPC errors by package xrpcerr.
package accounts
