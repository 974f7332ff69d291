// Package tests3 is the S3 server of the tests that run outside a Go test process: gofakes3 (the in-process S3
// server of the blob tests, pds/blobstore and pds/blob_test.go) on a loopback socket, as a program
// (cmd/s3server), so that another process, such as the reference PDS of scripts/takeover-reference.sh, can
// keep its blobs there and this server can read them.
package tests3
