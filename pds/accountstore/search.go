package accountstore

import (
	"context"
	"strings"
)

// SearchAccounts pages through accounts in DID order after cursor (a DID), optionally only those whose email
// starts with emailPrefix (case-insensitive).
func (s *Store) SearchAccounts(ctx context.Context, emailPrefix, cursor string, limit int) ([]*Account, error) {
	if emailPrefix == "" {
		return s.ListAccounts(ctx, cursor, limit)
	}
	esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(emailPrefix)
	return queryRows(ctx, s.db, scanAccount, "SELECT "+accountColumns+` FROM account WHERE email LIKE ? ESCAPE '\' AND did > ?
		ORDER BY did LIMIT ?`, esc+"%", cursor, limit)
}
