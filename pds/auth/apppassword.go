package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"golang.org/x/crypto/scrypt"

	"github.com/pdsgo/pds/pds/accountstore"
)

// NewAppPassword makes a password in the reference's shape: xxxx-xxxx-xxxx-xxxx, lower-case base32 (80 bits).
func NewAppPassword() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	b := make([]byte, 16)
	rand.Read(b)
	out := make([]byte, 0, 19)
	for i, c := range b {
		if i > 0 && i%4 == 0 {
			out = append(out, '-')
		}
		out = append(out, alphabet[int(c)%len(alphabet)])
	}
	return string(out)
}

// HashAppPassword hashes an app password with a salt derived from the DID (as the reference does), so a login
// attempt is one scrypt and one indexed lookup however many app passwords the account has.
func HashAppPassword(did syntax.DID, password string) (string, error) {
	sum := sha256.Sum256([]byte(did))
	salt := hex.EncodeToString(sum[:16])
	key, err := scrypt.Key([]byte(password), []byte(salt), 16384, 8, 1, 64)
	if err != nil {
		return "", err
	}
	return salt + ":" + hex.EncodeToString(key), nil
}

// looksLikeAppPassword is the cheap shape check that spares a second scrypt for ordinary wrong passwords.
func looksLikeAppPassword(p string) bool {
	if len(p) != 19 {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if i%5 == 4 {
			if c != '-' {
				return false
			}
		} else if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// VerifyAppPassword returns the account's app password matching password, or nil.
func (v *Verifier) VerifyAppPassword(ctx context.Context, did syntax.DID, password string) (*accountstore.AppPassword, error) {
	if !looksLikeAppPassword(password) {
		return nil, nil
	}
	hash, err := HashAppPassword(did, password)
	if err != nil {
		return nil, err
	}
	ap, err := v.store.AppPasswordByHash(ctx, did, hash)
	if errors.Is(err, accountstore.ErrNotFound) {
		return nil, nil
	}
	return ap, err
}

// AppPasswordScope is the access scope of a session made with an app password.
func AppPasswordScope(ap *accountstore.AppPassword) string {
	if ap.Privileged {
		return ScopeAppPassPrivileged
	}
	return ScopeAppPass
}
