package accounts

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
)

// NewInviteCode makes a code in the reference's shape: <hostname with dashes>-xxxxx-xxxxx.
func NewInviteCode(hostname string) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	raw := make([]byte, 24)
	rand.Read(raw)
	b := []byte(base64.RawURLEncoding.EncodeToString(raw)) // as refresh token ids: the code's letters come from these bytes
	part := func(off int) string {
		out := make([]byte, 5)
		for i := range out {
			out[i] = alphabet[int(b[off+i])%len(alphabet)]
		}
		return string(out)
	}
	return strings.ReplaceAll(hostname, ".", "-") + "-" + part(0) + "-" + part(5)
}
