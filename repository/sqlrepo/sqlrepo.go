// Package sqlrepo is a repository.Repository on database/sql whose writes
// are refused by the database itself when the proof's fence is older than
// the record's.
//
// # Tables
//
// Each entity kind has its own table (by default named after the kind):
//
//	id    TEXT PRIMARY KEY  -- the entity's ID
//	data  BYTEA / BLOB      -- the entity, encoded by Options.Codec (JSON by default); NULL once deleted
//	fence BIGINT / INTEGER  -- the fence of the last write or claim; 0 after Insert
//
// [Schema] returns the DDL and [Repository.CreateTable] runs it. Fences are
// stored as signed 64-bit integers, so proofs with fences above 2^63-1 are
// refused (ErrInvalid); every provider of this module starts at 1 and counts
// up by one per grant.
//
// # The fenced write
//
// Save and Delete are one statement each:
//
//	UPDATE t SET data = $1, fence = $2 WHERE id = $3 AND fence <= $2 AND data IS NOT NULL
//	UPDATE t SET data = NULL, fence = $1 WHERE id = $2 AND fence <= $1 AND data IS NOT NULL
//
// A deleted record stays as a tombstone (data NULL) that keeps its fence,
// so an entity deleted and inserted anew still refuses the proofs from
// before the delete; Insert revives a tombstone, and DeleteByID makes one
// too. Remove tombstones yourself (DELETE … WHERE data IS NULL) only when
// no holder from before can still be running, i.e. after the longest TTL.
//
// so the database refuses a proof older than the last write, whatever
// happened between the proof's check and the write. On PostgreSQL the
// write sits in a WITH clause and the same statement returns, from its
// snapshot, the record's fence: a refusal is repository.ErrNotFound (no
// record) or repository.ErrStale (a newer fence) without a second round
// trip. On SQLite the write is followed by a read of the fence. In both,
// a refusal whose classification finds a fence the write would have
// accepted (the record changed under the statement) runs the statement
// again, so every answer is true at the moment it was decided.
//
// # Claim on load
//
// A fence checked at write time alone lets a holder whose lease lapsed
// write after the next holder has read the entity and before it writes,
// and that write is then lost. The repository is therefore a
// locked.Claimer: locked.Load reads the record with
//
//	UPDATE t SET fence = $f WHERE id = $id AND fence <= $f RETURNING data
//
// so once the next holder has loaded, the record carries its fence and the
// lapsed holder's write is refused. docs/decisions.md states the guarantee
// and the interleaving that proves it.
//
// # Locks in the same database
//
// With Options.Hold set (a pgprovider.Provider on the same PostgreSQL
// database), Save and Delete also check, in the same statement, that the
// proof's token holds the lock row with the proof's fence and has not
// expired by the database clock: exact fencing, the store's final word.
//
// # Units of work
//
// [Repository.WithTx] returns the repository bound to a *sql.Tx, so that
// several aggregates are saved together; the fence checks hold inside the
// transaction, and a rolled-back transaction leaves every fence as it was.
//
// # Errors
//
// # Proofs from another lock store
//
// Without Options.Hold, Save and Delete first confirm the proof with its
// provider (Locked.Check, one round trip), then write with the fence; with
// the claim on load this is enough: a proof that passed Check and then
// lapsed can only write before the next holder's Load, which then reads
// that write.
//
// Besides the repository sentinels, a statement that failed before it ran,
// or that the database rejected, is locked.ErrUnavailable (nothing changed);
// a write whose connection failed while it ran is locked.ErrOutcomeUnknown
// (it may have been applied).
package sqlrepo

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/persistent"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/repository"
)

// Hold is implemented by a lock provider whose locks live in the
// repository's PostgreSQL database (pgprovider.Provider). HoldSQL returns
// an SQL boolean expression, true while the lock of the store key in
// parameter key is held by the token in parameter token with the fence in
// parameter fence and has not expired; the parameters are placeholders
// such as "$4". The provider owns its table's layout; the repository only
// puts the condition into its writes.
type Hold interface {
	HoldSQL(key, token, fence string) string
}

// Options configure a Repository. A nil *Options, and every zero field,
// means the default.
type Options struct {
	// Dialect is the SQL engine. Default Postgres.
	Dialect *Dialect

	// Table is the table's name, an identifier. Default the entity kind
	// (persistent.KindOf[T]), which must then be an identifier.
	Table string

	// Codec encodes entities. Default repository.JSON.
	Codec repository.Codec

	// Namespace must equal the locked.Service's Options.Namespace; proofs
	// from a Service with another namespace are refused. Default "".
	Namespace string

	// Hold, if set, is the provider whose locks are in the same database:
	// Save and Delete then check the lock row too (Postgres only).
	// Default nil: the fence alone decides.
	Hold Hold
}

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

var (
	_ repository.Repository[persistent.Persistent] = (*Repository[persistent.Persistent])(nil)
	_ locked.Claimer[persistent.Persistent]        = (*Repository[persistent.Persistent])(nil)
)

// Repository is a repository.Repository on an SQL table; see the package
// documentation. Create one with New; the zero value is not usable. It is
// safe for concurrent use (a Repository bound to a transaction is as safe as
// the *sql.Tx) and holds no resources: close the *sql.DB when done.
type Repository[T persistent.Persistent] struct {
	db     *sql.DB
	q      querier // db, or the transaction of WithTx
	d      *Dialect
	table  string
	codec  repository.Codec
	prefix string // Namespace + ":" or ""
	hold   bool
	st     statements
}

// New returns a Repository of T on db. opts may be nil. New does not
// contact the database; create the table with CreateTable or Schema. It
// returns an error matching locked.ErrInvalid for a nil db, a table name
// that is not an identifier, a Namespace containing ':', or a Hold with a
// dialect other than Postgres.
func New[T persistent.Persistent](db *sql.DB, opts *Options) (*Repository[T], error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Dialect == nil {
		o.Dialect = Postgres
	}
	if o.Table == "" {
		o.Table = persistent.KindOf[T]()
	}
	switch {
	case db == nil:
		return nil, fmt.Errorf("sqlrepo: new: %w", &provider.ArgError{Arg: "db", Reason: "must not be nil"})
	case !identRE.MatchString(o.Table):
		return nil, fmt.Errorf("sqlrepo: new: %w", &provider.ArgError{Arg: "Table", Reason: fmt.Sprintf("%q is not an identifier (letters, digits, '_'); set Options.Table", o.Table)})
	case strings.Contains(o.Namespace, ":"):
		return nil, fmt.Errorf("sqlrepo: new: %w", &provider.ArgError{Arg: "Namespace", Reason: "must not contain ':'"})
	case o.Hold != nil && !o.Dialect.holdable:
		return nil, fmt.Errorf("sqlrepo: new: %w", &provider.ArgError{Arg: "Hold", Reason: "needs the Postgres dialect"})
	}
	r := &Repository[T]{db: db, q: db, d: o.Dialect, table: o.Table, codec: o.Codec, hold: o.Hold != nil}
	if r.codec == nil {
		r.codec = repository.JSON
	}
	if o.Namespace != "" {
		r.prefix = o.Namespace + ":"
	}
	var hold func(key, token, fence string) string
	if o.Hold != nil {
		hold = o.Hold.HoldSQL
	}
	r.st = o.Dialect.build(quote(o.Table), hold)
	return r, nil
}

// Table returns the repository's table name.
func (r *Repository[T]) Table() string { return r.table }

// Schema returns the DDL of the repository's table.
func (r *Repository[T]) Schema() string { return r.d.schema(quote(r.table)) }

// CreateTable creates the repository's table if it does not exist.
func (r *Repository[T]) CreateTable(ctx context.Context) error {
	if _, err := r.q.ExecContext(ctx, r.Schema()); err != nil {
		return fmt.Errorf("sqlrepo: create table %s: %w", r.table, storeError(ctx, err, false))
	}
	return nil
}

// WithTx returns the repository bound to tx: its calls run inside tx and
// take effect when tx commits (nothing of them if it rolls back). Once tx
// has ended, calls fail with sql.ErrTxDone (locked.ErrUnavailable).
func (r *Repository[T]) WithTx(tx *sql.Tx) *Repository[T] {
	c := *r
	c.q = tx
	return &c
}

// Find implements repository.Repository: one SELECT, no lock. It returns an
// error matching repository.ErrNotFound if there is no record,
// locked.ErrInvalid for an empty ID, and locked.ErrUnavailable if the
// database fails.
func (r *Repository[T]) Find(ctx context.Context, id string) (T, error) {
	var zero T
	if err := checkID[T](id); err != nil {
		return zero, idError("find", id, err)
	}
	var data []byte // never NULL: the statement skips tombstones
	err := r.q.QueryRowContext(ctx, r.st.find, id).Scan(&data)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return zero, idError("find", id, repository.ErrNotFound)
	case err != nil:
		return zero, idError("find", id, storeError(ctx, err, false))
	}
	e, err := repository.Decode[T](r.codec, data)
	if err != nil {
		return zero, idError("find", id, err)
	}
	return e, nil
}

// Insert implements repository.Repository: one INSERT … ON CONFLICT DO
// NOTHING, with fence 0. It returns repository.ErrExists if the ID is taken,
// an error matching locked.ErrInvalid for a nil entity, an empty ID or an
// entity its codec cannot store (repository.ErrCodec).
func (r *Repository[T]) Insert(ctx context.Context, e T) error {
	if _, err := persistent.KeyOf(e); err != nil {
		return fmt.Errorf("sqlrepo: insert: %w: %w", locked.ErrInvalid, err)
	}
	id := e.ID()
	data, err := repository.Encode(r.codec, e)
	if err != nil {
		return idError("insert", id, err)
	}
	if err := ctx.Err(); err != nil {
		return idError("insert", id, err)
	}
	q, done, err := r.conn(ctx)
	if err != nil {
		return idError("insert", id, err)
	}
	defer done()
	res, err := q.ExecContext(ctx, r.st.insert, id, data)
	if err != nil {
		return idError("insert", id, storeError(ctx, err, true))
	}
	if n, err := res.RowsAffected(); err != nil {
		return idError("insert", id, storeError(ctx, err, true))
	} else if n == 0 {
		return idError("insert", id, repository.ErrExists)
	}
	return nil
}

// Save implements repository.Repository: one fenced UPDATE (see the package
// documentation). It returns an error matching locked.ErrNotHeld for a
// proof that does not hold the lock (repository.ErrStale for a fence older
// than the record's), repository.ErrNotFound if the record is gone,
// repository.ErrCodec for an entity its codec cannot store, the context's
// error if ctx has ended, and locked.ErrUnavailable or
// locked.ErrOutcomeUnknown if the database fails.
func (r *Repository[T]) Save(ctx context.Context, l *locked.Locked[T]) error {
	if err := r.checkLocal(l); err != nil {
		return fmt.Errorf("sqlrepo: save: %w", err)
	}
	id := l.Entity().ID()
	data, err := repository.Encode(r.codec, l.Entity())
	if err != nil {
		return idError("save", id, err)
	}
	return r.write(ctx, "save", l, data)
}

// Delete implements repository.Repository: one fenced DELETE, with the
// checks and errors of Save.
func (r *Repository[T]) Delete(ctx context.Context, l *locked.Locked[T]) error {
	if err := r.checkLocal(l); err != nil {
		return fmt.Errorf("sqlrepo: delete: %w", err)
	}
	return r.write(ctx, "delete", l, nil)
}

// DeleteByID implements repository.Repository: one UPDATE that leaves a
// tombstone (the fence is kept), idempotent, no lock. An empty ID is an
// error matching locked.ErrInvalid.
func (r *Repository[T]) DeleteByID(ctx context.Context, id string) error {
	if err := checkID[T](id); err != nil {
		return idError("delete", id, err)
	}
	if err := ctx.Err(); err != nil {
		return idError("delete", id, err)
	}
	q, done, err := r.conn(ctx)
	if err != nil {
		return idError("delete", id, err)
	}
	defer done()
	if _, err := q.ExecContext(ctx, r.st.deleteByID, id); err != nil {
		return idError("delete", id, storeError(ctx, err, true))
	}
	return nil
}

// Claim implements locked.Claimer: locked.Load calls it, under the new
// lease, instead of Find. It raises the record's fence to the lease's and
// returns the entity in one statement, so that no older proof can write
// the record afterwards. It returns repository.ErrNotFound if there is no
// record, repository.ErrStale if the record's fence is newer than the
// lease's (a later holder has claimed or written it), and the errors of
// Find.
func (r *Repository[T]) Claim(ctx context.Context, id string, lease *locked.Lease) (T, error) {
	var zero T
	if err := checkID[T](id); err != nil {
		return zero, idError("load", id, err)
	}
	fence, err := r.leaseFence(lease)
	if err != nil {
		return zero, idError("load", id, err)
	}
	if err := ctx.Err(); err != nil {
		return zero, idError("load", id, err)
	}
	q, done, err := r.conn(ctx)
	if err != nil {
		return zero, idError("load", id, err)
	}
	defer done()
	var data []byte
	for range maxAttempts {
		var current sql.NullInt64
		if r.d.withCTE {
			err = q.QueryRowContext(ctx, r.st.claim, fence, id).Scan(&data, &current)
		} else {
			err = q.QueryRowContext(ctx, r.st.claim, fence, id).Scan(&data)
			if errors.Is(err, sql.ErrNoRows) {
				data, err = nil, q.QueryRowContext(ctx, r.st.fence, id).Scan(&current)
				if errors.Is(err, sql.ErrNoRows) {
					err = nil
				}
			}
		}
		if err != nil {
			// A claim that may have applied raised the fence only; a retry
			// by the same lease finds fence == its own and succeeds.
			return zero, idError("load", id, storeError(ctx, err, true))
		}
		if data != nil {
			e, err := repository.Decode[T](r.codec, data)
			if err != nil {
				return zero, idError("load", id, err)
			}
			return e, nil
		}
		switch {
		case !current.Valid:
			return zero, idError("load", id, repository.ErrNotFound)
		case current.Int64 > fence:
			return zero, idError("load", id, staleError(fence, current.Int64))
		}
		// The record changed under the statement: decide again.
	}
	return zero, idError("load", id, fmt.Errorf("%w: the record kept changing under %d attempts", locked.ErrUnavailable, maxAttempts))
}

// maxAttempts bounds the re-runs of a refused write whose classification
// found a fence it would have accepted (the record changed under it).
const maxAttempts = 8

func (r *Repository[T]) write(ctx context.Context, op string, l *locked.Locked[T], data []byte) error {
	id := l.Entity().ID()
	lease := l.Lease()
	fence, err := r.leaseFence(lease)
	if err != nil {
		return idError(op, id, err)
	}
	if err := ctx.Err(); err != nil {
		return idError(op, id, err)
	}
	if !r.hold {
		// The provider confirms the token and fence; the fence in the
		// statement covers a lapse after this check (see the package doc).
		if err := l.Check(ctx); err != nil {
			return idError(op, id, err)
		}
	}
	q, done, err := r.conn(ctx)
	if err != nil {
		return idError(op, id, err)
	}
	defer done()
	stmt, args := r.st.save, []any{data, fence, id}
	if op == "delete" {
		stmt, args = r.st.delete, []any{fence, id}
	}
	if r.hold {
		args = append(args, lease.StoreKey(), lease.Token())
	}
	for range maxAttempts {
		var (
			applied int64
			current sql.NullInt64
			held    = true
		)
		if r.d.withCTE {
			err = q.QueryRowContext(ctx, stmt, args...).Scan(&applied, &current, &held)
		} else {
			var res sql.Result
			if res, err = q.ExecContext(ctx, stmt, args...); err == nil {
				if applied, err = res.RowsAffected(); err == nil && applied == 0 {
					err = q.QueryRowContext(ctx, r.st.fence, id).Scan(&current)
					if errors.Is(err, sql.ErrNoRows) {
						err = nil
					}
				}
			}
		}
		switch {
		case err != nil:
			return idError(op, id, storeError(ctx, err, true))
		case applied > 0:
			return nil
		case !held:
			return idError(op, id, fmt.Errorf("%w: the database's lock row is not held by the proof's token and fence %d", locked.ErrNotHeld, fence))
		case !current.Valid:
			return idError(op, id, repository.ErrNotFound)
		case current.Int64 > fence:
			return idError(op, id, staleError(fence, current.Int64))
		}
		// The record changed under the statement: decide again.
	}
	return idError(op, id, fmt.Errorf("%w: the record kept changing under %d attempts", locked.ErrUnavailable, maxAttempts))
}

// conn returns where a write runs: a connection of its own taken from the
// pool first, so that a failure to get one (a closed pool, a refused dial)
// is known to have sent nothing (locked.ErrUnavailable); or the bound
// transaction. done returns the connection to the pool.
func (r *Repository[T]) conn(ctx context.Context) (q querier, done func(), err error) {
	if r.q != querier(r.db) {
		return r.q, func() {}, nil
	}
	c, err := r.db.Conn(ctx)
	if err != nil {
		return nil, nil, storeError(ctx, err, false)
	}
	return c, func() { _ = c.Close() }, nil
}

func staleError(fence, current int64) error {
	return fmt.Errorf("%w: proof fence %d, record fence %d", repository.ErrStale, fence, current)
}

// checkLocal runs Locked.CheckLocal and checks the proof's namespace.
func (r *Repository[T]) checkLocal(l *locked.Locked[T]) error {
	if err := l.CheckLocal(); err != nil {
		return err
	}
	lease := l.Lease()
	if want := r.prefix + lease.Key(); lease.StoreKey() != want {
		return fmt.Errorf("%w: %w: the proof locks %q in the store, the repository expects %q: Options.Namespace must equal the Service's",
			locked.ErrNotHeld, locked.ErrInvalid, lease.StoreKey(), want)
	}
	return nil
}

func (r *Repository[T]) leaseFence(lease *locked.Lease) (int64, error) {
	if lease == nil {
		return 0, fmt.Errorf("%w: nil lease", locked.ErrNotHeld)
	}
	if want := r.prefix + lease.Key(); lease.StoreKey() != want {
		return 0, fmt.Errorf("%w: %w: the lease locks %q in the store, the repository expects %q: Options.Namespace must equal the Service's",
			locked.ErrNotHeld, locked.ErrInvalid, lease.StoreKey(), want)
	}
	f := lease.Fence()
	if f == 0 || f > math.MaxInt64 {
		return 0, fmt.Errorf("%w: fence %d outside 1..2^63-1", locked.ErrInvalid, f)
	}
	return int64(f), nil
}

func checkID[T persistent.Persistent](id string) error {
	if _, err := persistent.KeyFor[T](id); err != nil {
		return fmt.Errorf("%w: %w", locked.ErrInvalid, err)
	}
	return nil
}

func idError(op, id string, err error) error {
	return fmt.Errorf("sqlrepo: %s %q: %w", op, id, err)
}

// storeError classifies a database error. An error from the engine itself
// (a PostgreSQL SQLSTATE, an SQLite result code) means the statement was
// refused: nothing changed, locked.ErrUnavailable. So does a failure
// before anything was sent (driver.ErrBadConn, a done transaction, a
// context that ended before the call). Any other failure of a write (a
// connection lost while it ran, a context that ended while waiting for the
// answer) is locked.ErrOutcomeUnknown. The context's error is added when it
// has ended, so that neither check lies.
func storeError(ctx context.Context, err error, write bool) error {
	var pgErr interface{ SQLState() string }
	var liteErr interface{ Code() int }
	definite := !write || errors.As(err, &pgErr) || errors.As(err, &liteErr) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrTxDone) || errors.Is(err, sql.ErrConnDone)
	wrap := provider.OutcomeUnknown
	if definite {
		wrap = provider.Unavailable
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return wrap(fmt.Errorf("%w: %w", cerr, err))
	}
	return wrap(err)
}
