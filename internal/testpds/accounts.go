package testpds

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/pds/accountstore"
)

// Accounts: what a test reads of an account straight from a stopped server's data directory.

// SigningKeyOf reads an account's repo signing key from a stopped server's data directory.
func SigningKeyOf(t testing.TB, dataDir, did string) atcrypto.PrivateKey {
	t.Helper()
	accounts, err := accountstore.Open(context.Background(), filepath.Join(dataDir, "account.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := accounts.AccountByDID(context.Background(), syntax.DID(did))
	accounts.Close()
	if err != nil {
		t.Fatal(err)
	}
	key, err := atcrypto.ParsePrivateBytesK256(a.SigningKey)
	if err != nil {
		t.Fatal(err)
	}
	return key
}
