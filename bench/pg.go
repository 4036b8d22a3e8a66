package main

// The PostgreSQL section: pgprovider acquire+release next to the raw
// INSERT … ON CONFLICT + DELETE pair (the floor); the sqlrepo entity cycle
// (locked.Load → N++ → Save → Close, locks in the same database, exact
// fencing) next to the same work in raw statements; and the contended
// handoff on pgprovider (a Provider and pool per worker, like W processes),
// reporting max wait ÷ the fair share W·H. It starts its own PostgreSQL
// (internal/pgtest) and is skipped, with a line saying so, when PostgreSQL
// is not installed.
//
// cirello.io/pglock, the table-based peer the issue names, is not
// reachable through this machine's module proxy (403), so it is not
// measured here.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/lockproof/lockproof/internal/pgtest"
	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/provider/pgprovider"
	"github.com/lockproof/lockproof/repository/sqlrepo"
)

type pgCounter struct {
	Key string
	N   int64
}

func (*pgCounter) Kind() string { return "pgcounter" }
func (c *pgCounter) ID() string { return c.Key }

// pgResults is what the PostgreSQL section measured.
type pgResults struct {
	skipped string // why the section did not run; "" if it ran
	version string
	ops     []*pgOp
	handoff *handoffRow
	err     error
}

// pgOp is one uncontended PostgreSQL contender: ns per op in every round.
type pgOp struct {
	id, name string
	rounds   []float64
	stmts    float64 // statements sent per op (each one round trip)
	allocs   float64 // Go allocations per op
	err      error
}

// pgStatements counts the statements the section's connections send.
var pgStatements atomic.Int64

// stmtCounter is a pgx tracer that counts statements into pgStatements.
type stmtCounter struct{}

func (stmtCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	pgStatements.Add(1)
	return ctx
}

func (stmtCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *pgResults) op(id string) *pgOp {
	for _, o := range r.ops {
		if o.id == id {
			return o
		}
	}
	return nil
}

// paired is the median over rounds of a's time ÷ b's in the same round.
func (r *pgResults) paired(a, b string) float64 {
	oa, ob := r.op(a), r.op(b)
	if oa == nil || ob == nil || oa.err != nil || ob.err != nil {
		return math.NaN()
	}
	return pairedMedian(oa.rounds, ob.rounds)
}

const floorAcquire = `INSERT INTO floor_locks VALUES ($1, $2, clock_timestamp() + interval '30 seconds')
	ON CONFLICT (key) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at
	WHERE floor_locks.expires_at <= clock_timestamp()`

// runPostgres runs the section; it never returns nil.
func runPostgres(ctx context.Context, cfg config, logf func(string, ...any)) *pgResults {
	res := &pgResults{}
	if _, err := pgtest.Bin(); err != nil {
		res.skipped = "PostgreSQL not installed (initdb and postgres not found on PATH nor in /usr/lib/postgresql/*/bin; apt-get install -y postgresql)"
		logf("postgres: skipped: %s", res.skipped)
		return res
	}
	srv, err := pgtest.StartServer()
	if err != nil {
		res.err = err
		return res
	}
	defer func() {
		if err := srv.Close(); err != nil {
			res.err = cmpErr(res.err, err)
		}
	}()
	logf("postgres on %s", srv.Addr())
	res.err = measurePostgres(ctx, cfg, srv.DSN(), res, logf)
	return res
}

func measurePostgres(ctx context.Context, cfg config, dsn string, res *pgResults, logf func(string, ...any)) error {
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return err
	}
	pcfg.ConnConfig.Tracer = stmtCounter{}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := pool.QueryRow(ctx, "SHOW server_version").Scan(&res.version); err != nil {
		return err
	}
	p, err := pgprovider.New(pool, nil)
	if err != nil {
		return err
	}
	defer p.Close()
	if err := p.CreateSchema(ctx); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE floor_locks (key TEXT PRIMARY KEY, token TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL)`); err != nil {
		return err
	}
	db := stdlib.OpenDB(*pcfg.ConnConfig.Copy())
	defer db.Close()
	svc, err := locked.New(p, &locked.Options{TTL: ttl})
	if err != nil {
		return err
	}
	defer svc.Close()
	repo, err := sqlrepo.New[*pgCounter](db, &sqlrepo.Options{Hold: p})
	if err != nil {
		return err
	}
	if err := repo.CreateTable(ctx); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE raw_counter (id TEXT PRIMARY KEY, data BYTEA, fence BIGINT NOT NULL DEFAULT 0)`); err != nil {
		return err
	}
	if err := repo.Insert(ctx, &pgCounter{Key: "c"}); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO raw_counter VALUES ('c', '{"Key":"c","N":0}', 0)`); err != nil {
		return err
	}

	var seq atomic.Int64
	key := func() string { return "k" + strconv.FormatInt(seq.Add(1)%64, 10) }
	type pgCase struct {
		id, name string
		op       func(context.Context) error
	}
	cases := []pgCase{
		{"pg_floor", "raw INSERT … ON CONFLICT + DELETE (two-statement floor)", func(ctx context.Context) error {
			k := key()
			tag, err := pool.Exec(ctx, floorAcquire, k, "tok")
			if err == nil && tag.RowsAffected() != 1 {
				err = errors.New("key was held")
			}
			if err != nil {
				return err
			}
			_, err = pool.Exec(ctx, `DELETE FROM floor_locks WHERE key = $1 AND token = $2`, k, "tok")
			return err
		}},
		{"pg_lockproof", "lockproof pgprovider TryAcquire + Release", func(ctx context.Context) error {
			k := key()
			if _, err := p.TryAcquire(ctx, k, "tok", ttl); err != nil {
				return err
			}
			return p.Release(ctx, k, "tok")
		}},
		{"pg_entity_raw", "raw statements: INSERT ON CONFLICT, UPDATE … RETURNING data, UPDATE data, DELETE", func(ctx context.Context) error {
			const k = "pgcounter:c"
			if _, err := pool.Exec(ctx, floorAcquire, k, "tok"); err != nil {
				return err
			}
			var data []byte
			if err := pool.QueryRow(ctx, `UPDATE raw_counter SET fence = fence + 1 WHERE id = 'c' RETURNING data`).Scan(&data); err != nil {
				return err
			}
			if _, err := pool.Exec(ctx, `UPDATE raw_counter SET data = $1 WHERE id = 'c'`, data); err != nil {
				return err
			}
			_, err := pool.Exec(ctx, `DELETE FROM floor_locks WHERE key = $1 AND token = $2`, k, "tok")
			return err
		}},
		{"pg_entity_lockproof", "lockproof locked.Load + N++ + sqlrepo Save + Close (exact fencing)", func(ctx context.Context) error {
			l, err := locked.Load(ctx, svc, repo, "c")
			if err != nil {
				return err
			}
			l.Entity().N++
			if err := repo.Save(ctx, l); err != nil {
				_ = l.Close()
				return err
			}
			return l.Close()
		}},
	}
	var fns []func(context.Context) error
	var blocks []int
	for _, c := range cases {
		row := &pgOp{id: c.id, name: c.name}
		res.ops = append(res.ops, row)
		n0 := pgStatements.Load()
		st, err := timeOp(ctx, cfg.opTime, c.op, nil) // profile, warm-up and block size
		if err != nil {
			return fmt.Errorf("%s: %w", c.id, err)
		}
		row.stmts = float64(pgStatements.Load()-n0) / float64(st.ops+20) // timeOp's 20 warm-up ops included
		row.allocs = st.allocsPerOp
		fns, blocks = append(fns, c.op), append(blocks, blockFor(st))
	}
	for r := range cfg.rounds {
		ns, bad, err := timeInterleaved(ctx, cfg.opTime, fns, blocks)
		if err != nil {
			if bad >= 0 {
				res.ops[bad].err = err
			}
			return err
		}
		var line []string
		for i, row := range res.ops {
			row.rounds = append(row.rounds, ns[i])
			line = append(line, row.id+" "+fmtNs(ns[i]))
		}
		logf("postgres %d/%d %s", r+1, cfg.rounds, strings.Join(line, ", "))
	}

	// The handoff: a pool and Provider per worker, like W processes.
	h := &handoffRow{id: "pg_lockproof", name: "lockproof pgprovider (pool+Provider per worker)", waiting: "FIFO queue, NOTIFY to the head (default options)", label: "lockproof pgprovider"}
	res.handoff = h
	c := handoffCase{id: h.id, prepare: func(_ *handoffRow, key string) (lockFunc, func(), error) {
		var closers []func()
		cleanup := func() {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
		ps := make([]*pgprovider.Provider, cfg.workers)
		for w := range ps {
			wp, err := pgxpool.New(ctx, dsn)
			if err != nil {
				cleanup()
				return nil, nil, err
			}
			closers = append(closers, wp.Close)
			if ps[w], err = pgprovider.New(wp, nil); err != nil {
				cleanup()
				return nil, nil, err
			}
			closers = append(closers, func() { _ = ps[w].Close() })
		}
		return func(ctx context.Context, w int) (func() error, error) {
			tok := "w" + strconv.Itoa(w)
			if _, err := ps[w].Acquire(ctx, key, tok, ttl); err != nil {
				return nil, err
			}
			return func() error { return ps[w].Release(context.Background(), key, tok) }, nil
		}, cleanup, nil
	}}
	for r := range cfg.handoffRounds {
		st, err := runHandoff(ctx, cfg, c, h, fmt.Sprintf("bench:h:pg:%d", r))
		if err != nil {
			h.err = err
			return fmt.Errorf("%s: %w", h.id, err)
		}
		h.rounds = append(h.rounds, st)
		logf("handoff %d/%d %-18s util %.3f p50 %-9s p99 %-9s max %-9s gap %-9s barged %3.0f%%",
			r+1, cfg.handoffRounds, h.id, st.util, fmtDur(st.p50), fmtDur(st.p99), fmtDur(st.max), fmtDur(st.gap), 100*st.barged)
	}
	h.med = medianHandoff(h.rounds)
	return nil
}

// ratios are the section's headline numbers; none if it did not run.
func (r *pgResults) ratios(cfg config) []ratio {
	if r == nil || r.skipped != "" {
		return nil
	}
	rs := []ratio{
		{"pg_uncontended_vs_floor", r.paired("pg_lockproof", "pg_floor"), "pgprovider TryAcquire+Release ÷ raw INSERT ON CONFLICT + DELETE"},
		{"pg_entity_cycle_vs_raw", r.paired("pg_entity_lockproof", "pg_entity_raw"), "locked.Load+Save+Close on sqlrepo+pgprovider ÷ the same raw statements"},
	}
	if h := r.handoff; h != nil && h.err == nil && len(h.rounds) > 0 {
		fair := float64(time.Duration(cfg.workers) * cfg.hold)
		rs = append(rs,
			ratio{"pg_handoff_util", h.med.util, "W·R·H ÷ wall, pgprovider"},
			ratio{"pg_handoff_maxwait_vs_fair", float64(h.med.max) / fair, "pgprovider max wait ÷ (W·H)"},
			ratio{"pg_handoff_p99wait_vs_fair", float64(h.med.p99) / fair, "pgprovider p99 wait ÷ (W·H)"},
			ratio{"pg_handoff_retaken", h.med.barged, "share of turns re-taken by the releaser while others waited (FIFO: 0)"})
	}
	return rs
}

// markdown renders the section.
func (r *pgResults) markdown(b *strings.Builder, cfg config) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	p("### 9. PostgreSQL: pgprovider and sqlrepo")
	p("")
	switch {
	case r == nil:
		p("Not run (-sections).")
		p("")
		return
	case r.skipped != "":
		p("Skipped: %s.", r.skipped)
		p("")
		return
	}
	p("PostgreSQL %s started by the run (fsync, synchronous_commit and full_page_writes off), one pgx pool; each pair of contenders interleaved as in table 1, %d round(s) of %s, paired ratios. cirello.io/pglock, the table-based Go peer, is not measured: this machine's module proxy refuses it (403 Forbidden).", r.version, cfg.rounds, cfg.opTime)
	p("")
	p("| contender | per op | × baseline | statements/op | allocs/op | rounds |")
	p("|---|--:|--:|--:|--:|---|")
	base := map[string]string{"pg_floor": "pg_floor", "pg_lockproof": "pg_floor", "pg_entity_raw": "pg_entity_raw", "pg_entity_lockproof": "pg_entity_raw"}
	for _, o := range r.ops {
		if o.err != nil || len(o.rounds) == 0 {
			p("| %s | failed: %s | | | | |", o.name, mdEscape(errString(o.err)))
			continue
		}
		var rounds []string
		for _, ns := range o.rounds {
			rounds = append(rounds, fmtNs(ns))
		}
		p("| %s | **%s** | %.2f | %.1f | %.0f | %s |", o.name, fmtNs(median(o.rounds)), r.paired(o.id, base[o.id]), o.stmts, o.allocs, strings.Join(rounds, " / "))
	}
	p("")
	if h := r.handoff; h != nil {
		fair := time.Duration(cfg.workers) * cfg.hold
		p("Contended handoff, W=%d × R=%d × H=%s on one key (fair wait W·H = %s), columns as in table 2:", cfg.workers, cfg.turns, cfg.hold, fair)
		p("")
		p("| contender | waiting | utilisation | p50 wait | p99 wait | max wait | max ÷ W·H | idle/turn | re-taken |")
		p("|---|---|--:|--:|--:|--:|--:|--:|--:|")
		if h.err != nil || len(h.rounds) == 0 {
			p("| %s | %s | failed: %s | | | | | | |", h.name, h.waiting, mdEscape(errString(h.err)))
		} else {
			p("| %s | %s | **%.2f** | %s | %s | %s | %.1f | %s | %.0f%% |", h.name, h.waiting, h.med.util,
				fmtDur(h.med.p50), fmtDur(h.med.p99), fmtDur(h.med.max), float64(h.med.max)/float64(fair), fmtDur(h.med.gap), 100*h.med.barged)
		}
		p("")
	}
	if r.err != nil {
		p("The section failed: %s", mdEscape(r.err.Error()))
		p("")
	}
}
