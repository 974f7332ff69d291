package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
)

// ErrWrongKey means PDS_BACKUP_KEY does not open this backup.
var ErrWrongKey = errors.New("backup: PDS_BACKUP_KEY does not decrypt this backup (wrong key)")

// ErrCorrupt means an object does not decrypt or does not have the content its manifest names.
var ErrCorrupt = errors.New("backup: object is corrupt or was tampered with")

const keyObject = "key.age"

// keyring is the age identity objects are decrypted with and the recipient they are encrypted to.
type keyring struct {
	id   age.Identity
	rcpt age.Recipient
}

// openKeyring turns PDS_BACKUP_KEY into the backup's keyring. An age identity is used as it is. A passphrase
// unlocks key.age, an X25519 identity encrypted with it (created by the first round): scrypt is slow by design,
// so it runs once, not once per object.
func openKeyring(ctx context.Context, st Store, key string, create bool) (*keyring, error) {
	key = strings.TrimSpace(key)
	if strings.HasPrefix(key, "AGE-SECRET-KEY-") {
		id, err := age.ParseX25519Identity(key)
		if err != nil {
			return nil, fmt.Errorf("PDS_BACKUP_KEY: %w", err)
		}
		return &keyring{id: id, rcpt: id.Recipient()}, nil
	}
	rc, err := st.Get(ctx, keyObject)
	if errors.Is(err, ErrNotFound) && create {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			return nil, err
		}
		pr, err := age.NewScryptRecipient(key)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, pr)
		if err != nil {
			return nil, err
		}
		io.WriteString(w, id.String())
		if err := w.Close(); err != nil {
			return nil, err
		}
		if err := st.Put(ctx, keyObject, bytes.NewReader(buf.Bytes()), int64(buf.Len())); err != nil {
			return nil, err
		}
		return &keyring{id: id, rcpt: id.Recipient()}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("backup key object: %w", err)
	}
	defer rc.Close()
	pi, err := age.NewScryptIdentity(key)
	if err != nil {
		return nil, err
	}
	r, err := age.Decrypt(rc, pi)
	if err != nil {
		return nil, ErrWrongKey
	}
	raw, err := io.ReadAll(io.LimitReader(r, 1<<10))
	if err != nil {
		return nil, ErrWrongKey
	}
	id, err := age.ParseX25519Identity(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, ErrWrongKey
	}
	return &keyring{id: id, rcpt: id.Recipient()}, nil
}

// encrypt copies r into w encrypted.
func (k *keyring) encrypt(w io.Writer, r io.Reader) error {
	ew, err := age.Encrypt(w, k.rcpt)
	if err != nil {
		return err
	}
	if _, err := io.Copy(ew, r); err != nil {
		return err
	}
	return ew.Close()
}

// decrypt opens an encrypted stream; a wrong key is ErrWrongKey, later damage surfaces as a read error.
func (k *keyring) decrypt(r io.Reader) (io.Reader, error) {
	d, err := age.Decrypt(r, k.id)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			return nil, ErrWrongKey
		}
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return d, nil
}
