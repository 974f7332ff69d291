package accountstore

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/syntax"
)

// accountWrite matches SQL that changes the account table (not account_pref and the like).
var accountWrite = regexp.MustCompile(`(?i)\b(UPDATE|INSERT\s+(OR\s+\w+\s+)?INTO|REPLACE\s+INTO|DELETE\s+FROM)\s+account\b([^_]|$)`)

// TestAccountWritesInvalidateCache: every function of the package holding SQL that writes the account table
// calls s.changed (and none such SQL sits outside a function, where any code could use it). This is what keeps
// the account cache from serving a row that changed.
func TestAccountWritesInvalidateCache(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	writers := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		inFunc := map[*ast.BasicLit]bool{}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			writes, calls := false, false
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.BasicLit:
					inFunc[n] = true
					if isAccountWrite(n) {
						writes = true
					}
				case *ast.CallExpr:
					if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "changed" {
						calls = true
					}
				}
				return true
			})
			if writes {
				writers++
				if !calls && fd.Name.Name != "changed" {
					t.Errorf("%s: %s writes the account table without calling s.changed(did)", fset.Position(fd.Pos()), fd.Name.Name)
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && !inFunc[lit] && isAccountWrite(lit) {
				t.Errorf("%s: SQL writing the account table outside a function", fset.Position(lit.Pos()))
			}
			return true
		})
	}
	if writers < 9 { // CreateAccount, UpdateHandle, SetDeactivated, DeleteAccount, SetInvitesDisabled, ...
		t.Fatalf("found %d functions writing the account table: the pattern no longer matches the SQL", writers)
	}
}

func isAccountWrite(lit *ast.BasicLit) bool {
	if lit.Kind != token.STRING {
		return false
	}
	s, err := strconv.Unquote(lit.Value)
	return err == nil && accountWrite.MatchString(s)
}

// TestAccountCache: lookups by DID and handle are served from memory and see every change made through the
// store.
func TestAccountCache(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	key, err := atcrypto.GeneratePrivateKeyK256()
	if err != nil {
		t.Fatal(err)
	}
	const did = "did:plc:cached"
	if err := s.CreateAccount(ctx, &Account{DID: did, Handle: "cached.test", Email: "cached@example.com",
		PasswordHash: "x", SigningKey: key.Bytes(), CreatedAt: time.Now()}, ""); err != nil {
		t.Fatal(err)
	}
	get := func() *Account {
		t.Helper()
		a, err := s.AccountByDID(ctx, did)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}

	// Served from memory: a change behind the store's back is not seen until the store changes the row.
	get()
	if _, err := s.db.ExecContext(ctx, "UPDATE account SET password_hash = 'behind' WHERE did = ?", did); err != nil {
		t.Fatal(err)
	}
	if a := get(); a.PasswordHash != "x" {
		t.Fatalf("not cached: password hash %q", a.PasswordHash)
	}
	if a, err := s.AccountByHandle(ctx, "Cached.Test"); err != nil || a.DID != did || a.PasswordHash != "x" {
		t.Fatalf("by handle: %+v, %v", a, err)
	}
	// The caller's copy is its own.
	get().Handle = "mutated.test"
	if a := get(); a.Handle != "cached.test" {
		t.Fatalf("a caller's change reached the cache: %q", a.Handle)
	}
	// The parsed key is shared by the copies of a cached row.
	k1, err := get().Signer()
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := get().Signer()
	if k1 != k2 || !k1.Equal(key) {
		t.Fatal("signing key parsed again, or wrong")
	}
	if k3, err := (&Account{SigningKey: key.Bytes()}).Signer(); err != nil || !k3.Equal(key) {
		t.Fatalf("hand-made account: %v", err)
	}

	at := time.Now()
	changes := []struct {
		name   string
		change func() error
		check  func(a *Account) error
	}{
		{"UpdatePassword", func() error { return s.UpdatePassword(ctx, did, "pw2") }, func(a *Account) error {
			return want(a.PasswordHash, "pw2")
		}},
		{"UpdateEmail", func() error { return s.UpdateEmail(ctx, did, "new@example.com") }, func(a *Account) error {
			return want(a.Email, "new@example.com")
		}},
		{"SetEmailConfirmed", func() error { return s.SetEmailConfirmed(ctx, did, at) }, func(a *Account) error {
			return want(a.EmailConfirmedAt != nil, true)
		}},
		{"SetInvitesDisabled", func() error { return s.SetInvitesDisabled(ctx, did, true) }, func(a *Account) error {
			return want(a.InvitesDisabled, true)
		}},
		{"SetAccountTakedown", func() error { return s.SetAccountTakedown(ctx, did, "ticket-1") }, func(a *Account) error {
			return want(a.TakedownRef, "ticket-1")
		}},
		{"SetDeactivated", func() error { return s.SetDeactivated(ctx, did, &at, nil) }, func(a *Account) error {
			return want(a.DeactivatedAt != nil, true)
		}},
		{"UpdateHandle", func() error { return s.UpdateHandle(ctx, did, "renamed.test") }, func(a *Account) error {
			if _, err := s.AccountByHandle(ctx, "cached.test"); !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("old handle still resolves: %v", err)
			}
			b, err := s.AccountByHandle(ctx, "renamed.test")
			if err != nil {
				return err
			}
			return want(a.Handle+" "+b.DID.String(), "renamed.test "+did)
		}},
	}
	for _, c := range changes {
		get()
		if _, err := s.AccountByHandle(ctx, get().Handle); err != nil {
			t.Fatal(err)
		}
		if err := c.change(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if err := c.check(get()); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}

	// A new account may take the handle an old one left; a deleted account is gone from both indexes.
	if _, err := s.AccountByHandle(ctx, "renamed.test"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount(ctx, did); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AccountByDID(ctx, did); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted account by DID: %v", err)
	}
	if _, err := s.AccountByHandle(ctx, "renamed.test"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted account by handle: %v", err)
	}
	addAccount(t, s, "did:plc:other", "renamed.test")
	if a, err := s.AccountByHandle(ctx, "renamed.test"); err != nil || a.DID != "did:plc:other" {
		t.Fatalf("handle reused: %+v, %v", a, err)
	}
}

func want[T comparable](got, want T) error {
	if got != want {
		return fmt.Errorf("got %v, want %v", got, want)
	}
	return nil
}

// TestAccountCacheBounded: the LRU keeps at most its size, and a fill that raced with a change is dropped.
func TestAccountCacheBounded(t *testing.T) {
	c := newAccountCache(3)
	for i := range 5 {
		c.put(&Account{DID: syntax.DID(fmt.Sprintf("did:plc:%d", i)), Handle: fmt.Sprintf("h%d.test", i)}, c.generation())
	}
	if c.lru.Len() != 3 || len(c.byDID) != 3 || len(c.byHandle) != 3 {
		t.Fatalf("sizes %d %d %d", c.lru.Len(), len(c.byDID), len(c.byHandle))
	}
	if _, ok := c.getDID("did:plc:0"); ok {
		t.Fatal("oldest entry kept")
	}
	if a, ok := c.getHandle("h4.test"); !ok || a.DID != "did:plc:4" {
		t.Fatal("newest entry lost")
	}
	gen := c.generation()
	c.invalidate("did:plc:9") // a change to any account while a lookup was reading SQLite
	c.put(&Account{DID: "did:plc:stale", Handle: "stale.test"}, gen)
	if _, ok := c.getDID("did:plc:stale"); ok {
		t.Fatal("a fill older than a change was stored")
	}
}
