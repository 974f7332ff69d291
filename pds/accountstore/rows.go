package accountstore

import (
	"context"
	"database/sql"
)

// rowScanner is what *sql.Row and *sql.Rows share: one scan function reads a row from either.
type rowScanner interface{ Scan(...any) error }

// queryRows runs a query and scans each row with scan, in order; the rows are closed when it returns. The
// result is nil when there are no rows (see orEmpty).
func queryRows[T any](ctx context.Context, db *sql.DB, scan func(rowScanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// orEmpty turns "no rows" into an empty list, for the lists that answer [] rather than null.
func orEmpty[T any](list []T, err error) ([]T, error) {
	if err != nil {
		return nil, err
	}
	if list == nil {
		list = []T{}
	}
	return list, nil
}
