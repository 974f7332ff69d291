package accounts

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"strings"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"golang.org/x/crypto/scrypt"

	"github.com/pdsgo/pds/pds/xrpcerr"
)

// Passwords are hashed with scrypt in the reference PDS's format ("<hex salt>:<hex hash>", N=16384, r=8, p=1,
// 64-byte key, the salt used as its hex text), so hashes carried over from a reference installation verify.

// HashPassword hashes a password in that format (also used by tools that write accounts, cmd/pdsbench seed).
func HashPassword(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	saltHex := hex.EncodeToString(salt)
	key, err := scrypt.Key([]byte(password), []byte(saltHex), 16384, 8, 1, 64)
	if err != nil {
		return "", err
	}
	return saltHex + ":" + hex.EncodeToString(key), nil
}

// VerifyPassword checks a password against its stored hash in constant time.
func VerifyPassword(password, stored string) bool {
	saltHex, hashHex, ok := strings.Cut(stored, ":")
	if !ok {
		return false
	}
	want, err := hex.DecodeString(hashHex)
	if err != nil {
		return false
	}
	got, err := scrypt.Key([]byte(password), []byte(saltHex), 16384, 8, 1, len(want))
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(got, want) == 1
}

// MaxPasswordLength is the reference's limit for new passwords.
const MaxPasswordLength = 256

// SetPassword changes an account's password and revokes every session (resetPassword, admin update).
func (s *Service) SetPassword(ctx context.Context, did syntax.DID, password string) error {
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	if err := s.UpdatePassword(ctx, did, hash); err != nil {
		return xrpcerr.Account(err)
	}
	return s.endSessions(ctx, did)
}
