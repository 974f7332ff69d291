package pds

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/scrypt"

	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/xrpc"
)

// newAppPassword makes a password in the reference's shape: xxxx-xxxx-xxxx-xxxx, lower-case base32 (80 bits).
func newAppPassword() string {
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

// hashAppPassword hashes an app password with a salt derived from the DID (as the reference does), so a login
// attempt is one scrypt and one indexed lookup however many app passwords the account has.
func hashAppPassword(did, password string) (string, error) {
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

// verifyAppPassword returns the account's app password matching password, or nil.
func (s *Server) verifyAppPassword(ctx context.Context, did, password string) (*accountstore.AppPassword, error) {
	if !looksLikeAppPassword(password) {
		return nil, nil
	}
	hash, err := hashAppPassword(did, password)
	if err != nil {
		return nil, err
	}
	ap, err := s.accounts.AppPasswordByHash(ctx, did, hash)
	if errors.Is(err, accountstore.ErrNotFound) {
		return nil, nil
	}
	return ap, err
}

// appPasswordScope is the access scope of a session made with an app password.
func appPasswordScope(ap *accountstore.AppPassword) string {
	if ap.Privileged {
		return ScopeAppPassPrivileged
	}
	return ScopeAppPass
}

type appPasswordOutput struct {
	Name       string `json:"name"`
	Password   string `json:"password,omitempty"`
	CreatedAt  string `json:"createdAt"`
	Privileged bool   `json:"privileged"`
}

func (s *Server) handleCreateAppPassword(c echo.Context) error {
	ctx := c.Request().Context()
	var in struct {
		Name       string `json:"name"`
		Privileged bool   `json:"privileged"`
	}
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	name := strings.TrimSpace(in.Name)
	if name == "" || utf8.RuneCountInString(name) > 64 {
		return xrpc.InvalidRequest("App password name must be 1 to 64 characters")
	}
	did := viewerOf(c).DID
	password := newAppPassword()
	hash, err := hashAppPassword(did, password)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	if err := s.accounts.CreateAppPassword(ctx, did, name, hash, in.Privileged, now); err != nil {
		switch {
		case errors.Is(err, accountstore.ErrAppPasswordExists):
			return xrpc.InvalidRequest("An app password with that name already exists")
		case errors.Is(err, accountstore.ErrNotFound):
			return xrpc.NewError(http.StatusBadRequest, "AccountNotFound", "Account not found")
		}
		return err
	}
	return c.JSON(http.StatusOK, appPasswordOutput{Name: name, Password: password, CreatedAt: now.Format(time.RFC3339Nano), Privileged: in.Privileged})
}

func (s *Server) handleListAppPasswords(c echo.Context) error {
	list, err := s.accounts.ListAppPasswords(c.Request().Context(), viewerOf(c).DID)
	if err != nil {
		return err
	}
	out := make([]appPasswordOutput, len(list))
	for i, a := range list {
		out[i] = appPasswordOutput{Name: a.Name, CreatedAt: a.CreatedAt.UTC().Format(time.RFC3339Nano), Privileged: a.Privileged}
	}
	return c.JSON(http.StatusOK, map[string]any{"passwords": out})
}

func (s *Server) handleRevokeAppPassword(c echo.Context) error {
	var in struct {
		Name string `json:"name"`
	}
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	if err := s.accounts.RevokeAppPassword(c.Request().Context(), viewerOf(c).DID, in.Name); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}
