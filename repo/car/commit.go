package car

import (
	"bytes"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	atrepo "github.com/bluesky-social/indigo/atproto/repo"
	"github.com/bluesky-social/indigo/atproto/syntax"
)

// VerifyCommit decodes a repository's head commit block and checks it is a valid v3 commit of did, with a data
// root, signed by key (the account's signing key).
func VerifyCommit(data []byte, did syntax.DID, key atcrypto.PublicKey) (*atrepo.Commit, error) {
	var c atrepo.Commit
	if err := c.UnmarshalCBOR(bytes.NewReader(data)); err != nil {
		return nil, Invalid("the head is not a repository commit: %v", err)
	}
	if err := c.VerifyStructure(); err != nil {
		return nil, Invalid("invalid commit: %v", err)
	}
	if c.DID != did.String() {
		return nil, Invalid("the commit is for %s, not for this account (%s)", c.DID, did)
	}
	if !c.Data.Defined() {
		return nil, Invalid("invalid commit: no data root")
	}
	if err := c.VerifySignature(key); err != nil {
		return nil, Invalid("the commit's signature does not verify with the account's signing key")
	}
	return &c, nil
}
