// Package blobs owns the server side of blobs beyond their bytes: the blob store in use, the blob GC list and
// its collector, the locks that order an upload and a deletion of the same blob, the hook that schedules the
// collector when a commit leaves a blob unreferenced, quarantine (takedown), and an account's blob deletion.
// (The repo's blob errors are mapped to XRPC errors in package xrpcerr.)
//
// It may not touch accounts, sessions or the firehose: the takedown state it checks comes in as a function,
// and the HTTP handlers (upload, getBlob, listBlobs) stay in package pds. The bytes are in package blobstore,
// the metadata in each account's repository (package repo), the GC list in package blobgc.
package blobs
