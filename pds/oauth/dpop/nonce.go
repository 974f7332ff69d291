package dpop

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// DefaultRotation is how often the server nonce changes. The reference rotates every DPOP_NONCE_MAX_AGE/3 (1 min)
// and hands out the next window's nonce, so a nonce stays valid for about 3 minutes.
const DefaultRotation = time.Minute

// Nonces computes server nonces without state: the nonce of a time window is HMAC-SHA256(secret, window number).
// Servers sharing the secret agree on nonces. Safe for concurrent use.
type Nonces struct {
	secret   []byte
	rotation time.Duration
	// Now is the clock (time.Now when nil); tests move it.
	Now func() time.Time
}

// NewNonces returns a nonce source. A nil or empty secret gets 32 random bytes (nonces then do not survive a
// restart, which only costs clients one retry); rotation <= 0 means DefaultRotation.
func NewNonces(secret []byte, rotation time.Duration) *Nonces {
	if len(secret) == 0 {
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
	}
	if rotation <= 0 {
		rotation = DefaultRotation
	}
	return &Nonces{secret: append([]byte(nil), secret...), rotation: rotation}
}

func (n *Nonces) window() int64 {
	now := time.Now
	if n.Now != nil {
		now = n.Now
	}
	return now().UnixNano() / int64(n.rotation)
}

func (n *Nonces) compute(w int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(w))
	m := hmac.New(sha256.New, n.secret)
	m.Write(b[:])
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Current is the nonce to send in DPoP-Nonce headers. Like the reference it is the next window's value, so it is
// accepted for the rest of this window and the two after it.
func (n *Nonces) Current() string {
	return n.compute(n.window() + 1)
}

// Valid reports whether nonce belongs to the previous, current or next window.
func (n *Nonces) Valid(nonce string) bool {
	if nonce == "" {
		return false
	}
	w := n.window()
	ok := 0
	for d := int64(-1); d <= 1; d++ {
		ok |= subtle.ConstantTimeCompare([]byte(nonce), []byte(n.compute(w+d)))
	}
	return ok == 1
}
