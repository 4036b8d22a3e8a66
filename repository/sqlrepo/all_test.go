package sqlrepo_test

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/repository/sqlrepo"
)

// allIDs runs All and returns the IDs it yielded, failing t on an error.
func allIDs(t *testing.T, ctx context.Context, r *sqlrepo.Repository[*entity]) []string {
	t.Helper()
	var ids []string
	for e, err := range r.All(ctx) {
		if err != nil {
			t.Fatalf("All: %v", err)
		}
		ids = append(ids, e.Key)
	}
	return ids
}

// TestAll: on a table of its own, All yields the live records in byte
// order of their IDs across pages of 2, skips tombstones (left by Delete
// and by DeleteByID) and works in a transaction and on a pool of one
// connection whose loop body writes; a record that does not decode ends it
// with an error naming the record; a closed database is ErrUnavailable.
func TestAll(t *testing.T) {
	t.Cleanup(sqlrepo.SetAllPage(2))
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			ctx := t.Context()
			db := eng.open(t)
			db.SetMaxOpenConns(1) // a body that waited for All's connection would hang
			table := "all_" + strings.ReplaceAll(uuid.NewString(), "-", "")
			r := newRepo(t, db, &sqlrepo.Options{Dialect: eng.d, Table: table})
			if eng.d == sqlrepo.Postgres {
				icuOrder(t, db, table)
			}
			svc := memService(t)
			// Byte order: "B" < "a" < "a{1}" < "b" < "ä" (0xC3 0xA4); a
			// linguistic collation would put "B" after "a".
			live := []string{"ä", "b", "a{1}", "B", "a"}
			for _, id := range append(slices.Clone(live), "aa", "c", "a0") {
				if err := r.Insert(ctx, &entity{Key: id, N: 1}); err != nil {
					t.Fatal(err)
				}
			}
			l := load(t, svc, r, "aa")
			if err := r.Delete(ctx, l); err != nil {
				t.Fatal(err)
			}
			l.Close()
			for _, id := range []string{"c", "a0"} {
				if err := r.DeleteByID(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			slices.Sort(live)
			if got := allIDs(t, ctx, r); !slices.Equal(got, live) {
				t.Fatalf("All = %q, want %q", got, live)
			}

			// The loop body loads and saves on the only connection.
			bounded, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			for e, err := range r.All(bounded) {
				if err != nil {
					t.Fatal(err)
				}
				l, err := locked.Load(bounded, svc, r, e.Key)
				if err != nil {
					t.Fatalf("Load inside All: %v", err)
				}
				l.Entity().N = 2
				if err := r.Save(bounded, l); err != nil {
					t.Fatalf("Save inside All: %v", err)
				}
				l.Close()
			}
			for e, err := range r.All(ctx) {
				if err != nil || e.N != 2 {
					t.Fatalf("after the loop: %+v, %v; want N = 2", e, err)
				}
			}

			// In a transaction: its own uncommitted insert is seen.
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.WithTx(tx).Insert(ctx, &entity{Key: "bb", N: 1}); err != nil {
				t.Fatal(err)
			}
			want := slices.Clone(live)
			want = append(want, "bb")
			slices.Sort(want)
			if got := allIDs(t, ctx, r.WithTx(tx)); !slices.Equal(got, want) {
				t.Fatalf("All in the transaction = %q, want %q", got, want)
			}
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
			if got := allIDs(t, ctx, r); !slices.Equal(got, live) {
				t.Fatalf("All after the rollback = %q, want %q", got, live)
			}

			// A record that does not decode: the entities before it, then
			// one error, then the end.
			bad := `UPDATE "` + table + `" SET data = $1 WHERE id = $2`
			if eng.d == sqlrepo.SQLite {
				bad = strings.NewReplacer("$1", "?1", "$2", "?2").Replace(bad)
			}
			if _, err := db.ExecContext(ctx, bad, []byte("{not json"), "a{1}"); err != nil {
				t.Fatal(err)
			}
			var got []string
			errs := 0
			for e, err := range r.All(ctx) {
				if err != nil {
					if !strings.Contains(err.Error(), `all "a{1}": decode`) {
						t.Fatalf("All's error %v does not name the record", err)
					}
					errs++
					continue
				}
				got = append(got, e.Key)
			}
			if errs != 1 || !slices.Equal(got, []string{"B", "a"}) {
				t.Fatalf("All over an undecodable record yielded %q and %d errors, want [B a] and 1", got, errs)
			}

			db.Close()
			errs = 0
			for _, err := range r.All(ctx) {
				wantIs(t, "All on a closed database", err, locked.ErrUnavailable)
				errs++
			}
			if errs != 1 {
				t.Fatalf("All on a closed database yielded %d errors, want 1", errs)
			}
		})
	}
}

// icuOrder gives the id column of table a linguistic collation (ICU's root
// locale, which sorts "a" before "B"), if the server has one, so that All
// must ask for byte order itself. The test cluster's own locale is C.
func icuOrder(t *testing.T, db *sql.DB, table string) {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM pg_collation WHERE collname = 'und-x-icu'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Log("no ICU collation on this server: the id column keeps the C collation")
		return
	}
	if _, err := db.ExecContext(t.Context(), `ALTER TABLE "`+table+`" ALTER COLUMN id TYPE TEXT COLLATE "und-x-icu"`); err != nil {
		t.Fatal(err)
	}
}
