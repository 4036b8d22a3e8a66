package sqlrepo

import (
	"context"
	"database/sql"
	"fmt"
	"iter"

	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/repository"
)

// allPage is the number of records one SELECT of All reads.
var allPage = 256

// rowsQuerier is what *sql.DB, *sql.Conn and *sql.Tx share for All.
type rowsQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// allStatement returns the SELECT of one page of All: the live records
// (data not NULL: tombstones are skipped) with an ID above parameter 1, in
// byte order of the IDs, at most parameter 2 of them. PostgreSQL compares
// TEXT by the database's collation unless told otherwise, so the IDs are
// compared COLLATE "C" (byte order, as Go sorts strings); SQLite's default
// collation is already bytewise.
func (d *Dialect) allStatement(qt string) string {
	id := "id"
	if d == Postgres {
		id = `id COLLATE "C"`
	}
	return "SELECT id, data FROM " + qt + " WHERE data IS NOT NULL AND " + id + " > " + d.param(1) +
		" ORDER BY " + id + " LIMIT " + d.param(2)
}

// All implements repository.Repository: it yields every live entity of the
// table in ID order (byte order), without a lock, skipping tombstones. It
// reads in pages of a few hundred records, each one SELECT … WHERE id > the
// last ID yielded ORDER BY id LIMIT n, and yields a page only after its
// rows are closed: the loop body never waits for a connection All holds
// (a pool of one connection, as SQLite setups use, or a transaction of
// WithTx, works), and memory stays bounded by a page. Each page is read as
// of its SELECT: an entity stored for the whole iteration is yielded
// exactly once, one inserted or deleted meanwhile may or may not be, and
// IDs only increase, so none comes twice.
//
// On PostgreSQL the IDs are compared COLLATE "C"; on a database whose
// default collation is not C, an index on (id COLLATE "C") lets each page
// be an index range scan instead of a scan of the table.
//
// Errors, each yielded with the zero entity and ending the iteration: the
// context's error, locked.ErrUnavailable if the database fails (a read
// changes nothing), and the codec's error, naming the ID, for a record it
// cannot decode.
func (r *Repository[T]) All(ctx context.Context) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		q, ok := r.q.(rowsQuerier)
		if !ok { // *sql.DB and *sql.Tx, the only queriers, implement it
			yield(zero, fmt.Errorf("sqlrepo: all: %w", provider.Unavailable(fmt.Errorf("%T cannot run queries", r.q))))
			return
		}
		stmt := r.d.allStatement(quote(r.table))
		after := "" // every ID is longer than ""
		for {
			if err := ctx.Err(); err != nil {
				yield(zero, fmt.Errorf("sqlrepo: all: %w", err))
				return
			}
			page, err := r.readPage(ctx, q, stmt, after)
			if err != nil {
				yield(zero, fmt.Errorf("sqlrepo: all: %w", err))
				return
			}
			for _, rec := range page {
				e, err := repository.Decode[T](r.codec, rec.data)
				if err != nil {
					yield(zero, idError("all", rec.id, err))
					return
				}
				if !yield(e, nil) {
					return
				}
			}
			if len(page) < allPage {
				return
			}
			after = page[len(page)-1].id
		}
	}
}

type allRecord struct {
	id   string
	data []byte
}

// readPage reads the page of records after the ID after, and closes its
// rows before it returns.
func (r *Repository[T]) readPage(ctx context.Context, q rowsQuerier, stmt, after string) ([]allRecord, error) {
	rows, err := q.QueryContext(ctx, stmt, after, int64(allPage))
	if err != nil {
		return nil, storeError(ctx, err, false)
	}
	defer rows.Close()
	page := make([]allRecord, 0, allPage)
	for rows.Next() {
		var rec allRecord
		if err := rows.Scan(&rec.id, &rec.data); err != nil {
			return nil, storeError(ctx, err, false)
		}
		page = append(page, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, storeError(ctx, err, false)
	}
	return page, nil
}
