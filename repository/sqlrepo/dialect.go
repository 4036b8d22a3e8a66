package sqlrepo

import (
	"fmt"
	"regexp"
	"strconv"
)

// A Dialect is what the repository needs to know about an SQL engine:
// how parameters are written, the column types, and whether one statement
// can both write and report why it did not. Use [Postgres] or [SQLite].
type Dialect struct {
	name     string
	param    func(n int) string // the n-th parameter, from 1
	blob     string             // column type of data
	bigint   string             // column type of fence
	withCTE  bool               // data-modifying WITH: write and classify in one statement
	holdable bool               // supports Options.Hold (locks in the same database)
}

// Postgres is the dialect of PostgreSQL (any driver: pgx's stdlib, lib/pq).
// Save, Delete and the claim of locked.Load are each one statement that
// also reports, from the same snapshot, why it wrote nothing.
var Postgres = &Dialect{
	name:     "postgres",
	param:    func(n int) string { return "$" + strconv.Itoa(n) },
	blob:     "BYTEA",
	bigint:   "BIGINT",
	withCTE:  true,
	holdable: true,
}

// SQLite is the dialect of SQLite 3.35 or newer (modernc.org/sqlite,
// mattn/go-sqlite3). SQLite runs one writer at a time; a write that
// changed nothing is classified by a read right after it (see the package
// documentation).
var SQLite = &Dialect{
	name:   "sqlite",
	param:  func(n int) string { return "?" + strconv.Itoa(n) },
	blob:   "BLOB",
	bigint: "INTEGER",
}

// String returns the dialect's name: "postgres" or "sqlite".
func (d *Dialect) String() string { return d.name }

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// Schema returns the DDL of a repository's table in dialect d:
//
//	CREATE TABLE IF NOT EXISTS "table" (
//		id    TEXT PRIMARY KEY,
//		data  BYTEA,                    -- BLOB in SQLite: the entity, encoded by the codec; NULL once deleted
//		fence BIGINT NOT NULL DEFAULT 0 -- INTEGER in SQLite: the fence of the last write or claim
//	)
//
// table must be an identifier (letters, digits, '_', not starting with a
// digit, at most 63 bytes); d nil means Postgres.
func Schema(d *Dialect, table string) (string, error) {
	if d == nil {
		d = Postgres
	}
	if !identRE.MatchString(table) {
		return "", fmt.Errorf("sqlrepo: table %q is not an identifier (letters, digits, '_')", table)
	}
	return d.schema(quote(table)), nil
}

func (d *Dialect) schema(qtable string) string {
	return "CREATE TABLE IF NOT EXISTS " + qtable + " (\n" +
		"\tid    TEXT PRIMARY KEY,\n" +
		"\tdata  " + d.blob + ",\n" +
		"\tfence " + d.bigint + " NOT NULL DEFAULT 0\n)"
}

func quote(ident string) string { return `"` + ident + `"` }

// statements are a repository's SQL, built once by New.
type statements struct {
	find, insert, deleteByID string
	save, delete, claim      string // the write; with withCTE it also returns the classification
	fence                    string // SELECT fence, for dialects without withCTE
}

// build returns the statements for table qt. hold, if not nil, returns the
// lock-row condition (Postgres only) over the given parameters.
//
// Parameters: save 1 data, 2 fence, 3 id, [4 store key, 5 token];
// delete 1 fence, 2 id, [3 store key, 4 token]; claim 1 fence, 2 id.
func (d *Dialect) build(qt string, hold func(key, token, fence string) string) statements {
	p := d.param
	s := statements{
		find: "SELECT data FROM " + qt + " WHERE id = " + p(1) + " AND data IS NOT NULL",
		// A tombstone (data NULL) is revived with its fence kept.
		insert: "INSERT INTO " + qt + " AS t (id, data, fence) VALUES (" + p(1) + ", " + p(2) + ", 0)" +
			" ON CONFLICT (id) DO UPDATE SET data = excluded.data WHERE t.data IS NULL",
		deleteByID: "UPDATE " + qt + " SET data = NULL WHERE id = " + p(1) + " AND data IS NOT NULL",
		fence:      "SELECT fence FROM " + qt + " WHERE id = " + p(1) + " AND data IS NOT NULL",
	}
	cond := func(fence, id, key, token int) (where, held string) {
		where = " WHERE id = " + p(id) + " AND fence <= " + p(fence) + " AND data IS NOT NULL"
		held = "TRUE"
		if hold != nil {
			held = hold(p(key), p(token), p(fence))
			where += " AND " + held
		}
		return where, held
	}
	saveWhere, saveHeld := cond(2, 3, 4, 5)
	delWhere, delHeld := cond(1, 2, 3, 4)
	update := "UPDATE " + qt + " SET data = " + p(1) + ", fence = " + p(2) + saveWhere
	del := "UPDATE " + qt + " SET data = NULL, fence = " + p(1) + delWhere
	claim := "UPDATE " + qt + " SET fence = " + p(1) + " WHERE id = " + p(2) + " AND fence <= " + p(1) + " AND data IS NOT NULL RETURNING data"
	if !d.withCTE {
		s.save, s.delete, s.claim = update, del, claim
		return s
	}
	// One statement: the write in a WITH, and beside it, from the statement's
	// snapshot, the record's fence and whether the lock row holds, so that
	// a refusal says why without a second round trip.
	current := func(id int) string {
		return "(SELECT fence FROM " + qt + " WHERE id = " + p(id) + " AND data IS NOT NULL)"
	}
	s.save = "WITH w AS (" + update + " RETURNING 1) SELECT (SELECT count(*) FROM w), " + current(3) + ", " + saveHeld
	s.delete = "WITH w AS (" + del + " RETURNING 1) SELECT (SELECT count(*) FROM w), " + current(2) + ", " + delHeld
	s.claim = "WITH w AS (" + claim + ") SELECT (SELECT data FROM w), " + current(2)
	return s
}
