// Package pgprovider is a provider.Provider on PostgreSQL, for applications
// that have PostgreSQL and no Redis.
//
// # Tables
//
// Holds live in one table (Options.Table, default "lockproof_locks"), and
// fences come from one sequence (Table + "_fence"):
//
//	CREATE TABLE lockproof_locks (
//		key        TEXT PRIMARY KEY,
//		token      TEXT NOT NULL,
//		fence      BIGINT NOT NULL,
//		expires_at TIMESTAMPTZ NOT NULL  -- by the database clock
//	);
//	CREATE SEQUENCE lockproof_locks_fence;
//	CREATE TABLE lockproof_locks_waiters (key TEXT, token TEXT, until TIMESTAMPTZ, PRIMARY KEY (key, token));
//
// [Provider.CreateSchema] creates them. A sequence never hands out a number
// twice, also across a crash (its WAL record is written before the number
// is used); they stay below 2^63. A key's row is never deleted: a release
// marks it free (token ”, expires_at -infinity), and every grant after the
// first takes its fence from the sequence inside the UPDATE, under the
// row's lock, so grants of one key are ordered by that lock and their
// fences strictly increase. (Deleting the row would let an acquire whose
// fence was drawn before it waited insert that older fence after a newer
// holder's: the first version of this package did, and the conformance
// suite caught it.) The cost is one row per key ever locked, the same
// order as the entity records.
//
// # Calls
//
// Every call is one statement. Expiry is decided by the database clock
// (clock_timestamp()), so client clocks do not matter; Grant.Expires is
// measured locally from before the statement was sent, so it is never later
// than the database's expiry. Release and Extend are owner-checked by
// token. An acquire takes a free or lapsed row in one INSERT … ON CONFLICT
// DO UPDATE … WHERE expired.
//
// # Waiting
//
// A waiter that found the key held writes a row (key, token, until) into
// Table + "_waiters", then tries once more before it waits. Release and
// ForceRelease NOTIFY the channel Table + "_released" with the key, only
// when such a row exists (so uncontended releases notify nobody). One goroutine per Provider LISTENs on its own connection and wakes
// the waiters of that key, which register before they try, so no release
// between a try and the wait is missed. Waiters also retry after
// Options.PollInterval (jittered) or when the holder's hold would lapse,
// whichever comes first: the fallback for a lost listener connection.
// Waiting is prompt but not FIFO.
//
// # Failures
//
// A call that could not get a connection, or whose statement PostgreSQL
// rejected, or that pgx knows it never sent, returns provider.ErrUnavailable:
// nothing changed. A connection lost while a write statement ran returns
// provider.ErrOutcomeUnknown. An Acquire or TryAcquire that ends that way
// gives up its try: it ends the server process that ran the statement
// (pg_terminate_backend, waiting for it), then frees its own token's hold,
// which makes the answer a definite ErrNotAcquired; if that cannot finish
// within 200 ms the answer is ErrOutcomeUnknown (a hold may exist until its
// TTL). A statement already sent when its context ends may run on for 50 ms,
// so that it usually still returns a definite answer. A grant that arrives after the context ended is
// returned as a grant (the contract allows either answer then).
//
// The give-up calls pg_terminate_backend on the provider's own session,
// which PostgreSQL allows a role for its own sessions; a role that may not
// gets ErrOutcomeUnknown instead.
//
// # Exact fencing with sqlrepo
//
// [Provider.HoldSQL] gives sqlrepo the condition "this token holds this
// key with this fence and has not expired", which it puts into its Save and
// Delete statements when both live in one database.
package pgprovider

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lockproof/lockproof/provider"
)

// Defaults of Options.
const (
	DefaultTable        = "lockproof_locks"
	DefaultPollInterval = time.Second
)

// grace is how long a statement already sent may run on after its
// context ended; giveUpTimeout bounds the give-up of an acquire whose
// outcome is unknown. A call returns within its context's deadline plus
// grace, or plus grace + giveUpTimeout for an acquire that must be undone.
const (
	grace         = 50 * time.Millisecond
	giveUpTimeout = 200 * time.Millisecond
)

// Options configure a Provider. A nil *Options, and every zero field, means
// the default.
type Options struct {
	// Table is the locks table, an SQL identifier; the fence sequence is
	// Table + "_fence" and the wake-up channel Table + "_released".
	// Default DefaultTable.
	Table string

	// PollInterval is how often a waiter retries if no wake-up arrives.
	// Each wait is jittered to between half and 1.5 times this.
	// Default DefaultPollInterval.
	PollInterval time.Duration
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,50}$`)

var _ provider.Provider = (*Provider)(nil)

// Provider is a provider.Provider on PostgreSQL; see the package
// documentation. It does not own the pool: close the pool after the
// Provider.
type Provider struct {
	pool    *pgxpool.Pool
	table   string
	channel string
	poll    time.Duration
	q       queries

	stop     context.CancelFunc // ends the listener
	done     chan struct{}      // closed when the listener has returned
	closed   chan struct{}      // closed by Close
	closeOne sync.Once

	mu sync.Mutex
	// waiters is guarded by mu: key → wake-up channel → its waiter's token.
	waiters map[string]map[chan struct{}]string
}

type queries struct {
	acquire, acquireWaiter, release, extend, state, force, giveUp, schema string
	wait, unwait, terminate, gone                                         string
}

// New returns a Provider on pool and starts its listener goroutine (stopped
// by Close). It does not wait for the database; create the schema with
// CreateSchema. It returns an *provider.ArgError (ErrInvalid) for a nil
// pool, a Table that is not an identifier, or a negative PollInterval.
func New(pool *pgxpool.Pool, opts *Options) (*Provider, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Table == "" {
		o.Table = DefaultTable
	}
	if o.PollInterval == 0 {
		o.PollInterval = DefaultPollInterval
	}
	switch {
	case pool == nil:
		return nil, fmt.Errorf("pgprovider: new: %w", &provider.ArgError{Arg: "pool", Reason: "must not be nil"})
	case !identRE.MatchString(o.Table):
		return nil, fmt.Errorf("pgprovider: new: %w", &provider.ArgError{Arg: "Table", Reason: fmt.Sprintf("%q is not an identifier (letters, digits, '_', at most 51 bytes)", o.Table)})
	case o.PollInterval < 0:
		return nil, fmt.Errorf("pgprovider: new: %w", &provider.ArgError{Arg: "PollInterval", Reason: "must not be negative"})
	}
	t, seq := `"`+o.Table+`"`, `"`+o.Table+`_fence"`
	channel := o.Table + "_released"
	waiters := `"` + o.Table + `_waiters"`
	now := "clock_timestamp()"
	ttlAt := now + " + $3::bigint * interval '1 microsecond'"
	free := "token = '', expires_at = '-infinity'"
	remaining := "(extract(epoch from expires_at - " + now + ") * 1000000)::bigint"
	live := "w.key = $1 AND w.until > " + now
	// head is the oldest live waiter of key $1 other than token $2.
	head := "SELECT w.token, w.until FROM " + waiters + " w WHERE " + live + " AND w.token <> $2 ORDER BY w.seq LIMIT 1"
	// ahead: a live waiter of key $1 queued before token $2 (before
	// everyone, if $2 is not a live waiter).
	ahead := "EXISTS (SELECT 1 FROM " + waiters + " w WHERE " + live + " AND w.token <> $2 AND w.seq < COALESCE(" +
		"(SELECT m.seq FROM " + waiters + " m WHERE m.key = $1 AND m.token = $2 AND m.until > " + now + "), 9223372036854775807))"
	// notifyHead sends "<len(token)>:<token><key>" for the head waiter of
	// key $1, if there is one: only the head may take the key, so only the
	// head is woken. (The notify sits outside the LIMIT so it runs once.)
	notifyHead := func(except string) string {
		return "(SELECT pg_notify('" + channel + "', length(h.token) || ':' || h.token || $1) FROM (SELECT w.token FROM " + waiters +
			" w WHERE " + live + except + " ORDER BY w.seq LIMIT 1) h)"
	}
	// Returns the new fence, or NULL and when to retry unwoken (µs): the
	// holder's remaining TTL, or the head waiter's deadline when the key
	// is free but reserved for the head.
	acquire := func(waiter bool) string {
		q := "WITH ins AS (INSERT INTO " + t + " AS l (key, token, fence, expires_at) VALUES ($1, $2, nextval('" + seq + "'), " + ttlAt + ")" +
			" ON CONFLICT (key) DO UPDATE SET token = excluded.token, fence = nextval('" + seq + "'), expires_at = excluded.expires_at" +
			" WHERE l.expires_at <= " + now + " AND NOT " + ahead + " RETURNING fence)"
		if waiter {
			q += ", served AS (DELETE FROM " + waiters + " WHERE key = $1 AND token = $2 AND EXISTS (SELECT 1 FROM ins))"
		}
		return q + " SELECT (SELECT fence FROM ins), COALESCE((SELECT " + remaining + " FROM " + t + " WHERE key = $1 AND expires_at > " + now + ")," +
			" (SELECT (extract(epoch from h.until - " + now + ") * 1000000)::bigint FROM (" + head + ") h))"
	}
	p := &Provider{
		pool: pool, table: o.Table, channel: channel, poll: o.PollInterval,
		q: queries{
			schema: "CREATE TABLE IF NOT EXISTS " + t + " (key TEXT PRIMARY KEY, token TEXT NOT NULL, fence BIGINT NOT NULL, expires_at TIMESTAMPTZ NOT NULL);" +
				" CREATE SEQUENCE IF NOT EXISTS " + seq + ";" +
				" CREATE TABLE IF NOT EXISTS " + waiters + " (key TEXT NOT NULL, token TEXT NOT NULL, seq BIGINT GENERATED BY DEFAULT AS IDENTITY, until TIMESTAMPTZ NOT NULL, PRIMARY KEY (key, token))",
			// Joins the queue (at the back) or renews the deadline (keeping
			// the place, unless the deadline had lapsed: then the waiter
			// counts as gone and joins anew); drops the key's lapsed waiters.
			wait: "WITH gc AS (DELETE FROM " + waiters + " WHERE key = $1 AND token <> $2 AND until <= " + now + ")" +
				" INSERT INTO " + waiters + " AS w (key, token, until) VALUES ($1, $2, " + ttlAt + ")" +
				" ON CONFLICT (key, token) DO UPDATE SET until = excluded.until, seq = CASE WHEN w.until > " + now + " THEN w.seq ELSE excluded.seq END",
			// Leaves the queue; if the key is free, wakes the new head.
			unwait: "WITH gone AS (DELETE FROM " + waiters + " WHERE key = $1 AND token = $2)" +
				" SELECT " + notifyHead(" AND w.token <> $2") + " WHERE NOT EXISTS (SELECT 1 FROM " + t + " WHERE key = $1 AND expires_at > " + now + ")",
			acquire:       acquire(false),
			acquireWaiter: acquire(true),
			release:       "UPDATE " + t + " SET " + free + " WHERE key = $1 AND token = $2 AND expires_at > " + now + " RETURNING " + notifyHead(""),
			extend:        "UPDATE " + t + " SET expires_at = " + ttlAt + " WHERE key = $1 AND token = $2 AND expires_at > " + now + " RETURNING fence",
			state:         "SELECT token, fence, " + remaining + " FROM " + t + " WHERE key = $1 AND expires_at > " + now,
			force:         "UPDATE " + t + " SET " + free + " WHERE key = $1 AND expires_at > " + now + " RETURNING " + notifyHead(""),
			giveUp:        "UPDATE " + t + " SET " + free + " WHERE key = $1 AND token = $2",
			// A process that is already gone makes pg_terminate_backend warn
			// and return false; gone then decides.
			terminate: "SELECT pg_terminate_backend($1::int, $2::bigint) WHERE EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1::int)",
			gone:      "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1::int)",
		},
		closed:  make(chan struct{}),
		done:    make(chan struct{}),
		waiters: make(map[string]map[chan struct{}]string),
	}
	ctx, stop := context.WithCancel(context.Background())
	p.stop = stop
	go p.listen(ctx)
	return p, nil
}

// Table returns the locks table's name.
func (p *Provider) Table() string { return p.table }

// CreateSchema creates the locks table and the fence sequence if they do
// not exist.
func (p *Provider) CreateSchema(ctx context.Context) error {
	if _, err := p.pool.Exec(ctx, p.q.schema); err != nil {
		return fmt.Errorf("pgprovider: create schema: %w", provider.Unavailable(err))
	}
	return nil
}

// HoldSQL returns the SQL condition, over the placeholders key, token and
// fence, that is true while token holds key with fence by the database
// clock; sqlrepo.Options.Hold uses it for exact fencing.
func (p *Provider) HoldSQL(key, token, fence string) string {
	return `EXISTS (SELECT 1 FROM "` + p.table + `" WHERE key = ` + key + ` AND token = ` + token +
		` AND fence = ` + fence + ` AND expires_at > clock_timestamp())`
}

func (p *Provider) isClosed() bool {
	select {
	case <-p.closed:
		return true
	default:
		return false
	}
}

func errClosed(op string) error { return fmt.Errorf("pgprovider: %s: %w", op, provider.ErrClosed) }

// statementContext returns the context of one statement: it ends grace
// after ctx ends, not at once, so that a statement already sent usually
// still brings back its answer (a definite one) instead of being cut off
// with its outcome unknown.
func statementContext(ctx context.Context) (context.Context, context.CancelFunc) {
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(grace, cancel)
		context.AfterFunc(sctx, func() { t.Stop() })
	})
	return sctx, func() { stop(); cancel() }
}

// exec runs one statement on a connection of its own and classifies a
// failure: no connection, a statement PostgreSQL rejected, or a request
// pgx knows it never sent is provider.Unavailable; anything else is
// provider.OutcomeUnknown for a write (unknown false: a read).
func (p *Provider) exec(ctx context.Context, write bool, f func(ctx context.Context, c *pgxpool.Conn) error) error {
	return p.execPID(ctx, write, nil, f)
}

// execPID is exec that also stores the server process ID of the
// connection in *pid, for a give-up that must end that process.
func (p *Provider) execPID(ctx context.Context, write bool, pid *uint32, f func(ctx context.Context, c *pgxpool.Conn) error) error {
	c, err := p.pool.Acquire(ctx) // nothing is sent before it succeeds
	if err != nil {
		return provider.Unavailable(err)
	}
	defer c.Release()
	if pid != nil {
		*pid = c.Conn().PgConn().PID()
	}
	sctx, cancel := statementContext(ctx)
	defer cancel()
	err = f(sctx, c)
	if err == nil || errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	var pgErr *pgconn.PgError
	if !write || errors.As(err, &pgErr) || pgconn.SafeToRetry(err) {
		return provider.Unavailable(err)
	}
	return provider.OutcomeUnknown(err)
}

func micros(d time.Duration) int64 { return max(1, d.Microseconds()) }

// TryAcquire implements provider.Provider.
func (p *Provider) TryAcquire(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	if err := checkArgs(key, token, ttl); err != nil {
		return provider.Grant{}, fmt.Errorf("pgprovider: acquire: %w", err)
	}
	g, _, err := p.try(ctx, key, token, ttl, false)
	return g, err
}

// try runs the acquire statement once; a waiter's (one with a row in the
// waiters table) also leaves the queue when it is granted. On refusal it
// returns ErrNotAcquired and when to retry unwoken: the holder's remaining
// time, or the head waiter's if the key is free but reserved (0 if
// unknown).
func (p *Provider) try(ctx context.Context, key, token string, ttl time.Duration, waiter bool) (provider.Grant, time.Duration, error) {
	if p.isClosed() {
		return provider.Grant{}, 0, errClosed("acquire")
	}
	if ctx.Err() != nil {
		return provider.Grant{}, 0, fmt.Errorf("pgprovider: acquire %q: %w", key, provider.CtxError(ctx))
	}
	start := time.Now()
	var (
		fence, rest *int64
		pid         uint32
	)
	q := p.q.acquire
	if waiter {
		q = p.q.acquireWaiter
	}
	err := p.execPID(ctx, true, &pid, func(ctx context.Context, c *pgxpool.Conn) error {
		return c.QueryRow(ctx, q, key, token, micros(ttl)).Scan(&fence, &rest)
	})
	switch {
	case errors.Is(err, provider.ErrOutcomeUnknown):
		return provider.Grant{}, 0, p.giveUp(ctx, key, token, pid, err)
	case err != nil:
		return provider.Grant{}, 0, fmt.Errorf("pgprovider: acquire %q: %w", key, err)
	case fence != nil:
		return provider.Grant{Fence: uint64(*fence), Expires: start.Add(ttl)}, 0, nil
	}
	var wait time.Duration
	if rest != nil && *rest > 0 {
		wait = time.Duration(*rest) * time.Microsecond
	}
	if ctx.Err() != nil {
		return provider.Grant{}, 0, fmt.Errorf("pgprovider: acquire %q: %w", key, provider.CtxError(ctx))
	}
	return provider.Grant{}, wait, fmt.Errorf("pgprovider: acquire %q: %w", key, provider.ErrNotAcquired)
}

// giveUp undoes an acquire whose statement may have run on server process
// pid. PostgreSQL runs a statement it received even after its client left,
// so it first ends that process (pg_terminate_backend, waiting for it):
// then the statement has either committed or never will. Freeing the
// token's hold after that gives a definite refusal whether or not the
// statement had taken it. If the give-up cannot finish within
// giveUpTimeout the outcome stays unknown.
func (p *Provider) giveUp(ctx context.Context, key, token string, pid uint32, cause error) error {
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), giveUpTimeout)
	defer cancel()
	var gone bool
	err := p.exec(gctx, true, func(ctx context.Context, c *pgxpool.Conn) error {
		if _, err := c.Exec(ctx, p.q.terminate, int64(pid), giveUpTimeout.Milliseconds()/2); err != nil {
			return err
		}
		if err := c.QueryRow(ctx, p.q.gone, int64(pid)).Scan(&gone); err != nil || !gone {
			return err
		}
		_, err := c.Exec(ctx, p.q.giveUp, key, token)
		return err
	})
	switch {
	case err != nil:
		return fmt.Errorf("pgprovider: acquire %q: %w (and its undo failed: %v; a hold may remain until its TTL)", key, cause, err)
	case !gone:
		return fmt.Errorf("pgprovider: acquire %q: %w (its server process %d did not end; a hold may remain until its TTL)", key, cause, pid)
	case ctx.Err() != nil:
		return fmt.Errorf("pgprovider: acquire %q: %w", key, provider.CtxError(ctx))
	}
	// Undone: a definite refusal. The cause is text only, so that the
	// error does not also match ErrOutcomeUnknown.
	return fmt.Errorf("pgprovider: acquire %q: %w (its try was undone after: %v)", key, provider.ErrNotAcquired, cause)
}

// Acquire implements provider.Provider: see the package documentation on
// waiting.
func (p *Provider) Acquire(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	if err := checkArgs(key, token, ttl); err != nil {
		return provider.Grant{}, fmt.Errorf("pgprovider: acquire: %w", err)
	}
	wake := make(chan struct{}, 1)
	p.addWaiter(key, token, wake)
	defer p.removeWaiter(key, wake)
	registered := false
	for {
		g, rest, err := p.try(ctx, key, token, ttl, registered)
		if err == nil && registered {
			registered = false // the grant removed the waiter's row
		}
		if !errors.Is(err, provider.ErrNotAcquired) || ctx.Err() != nil {
			if registered {
				p.unwait(ctx, key, token)
			}
			return g, err
		}
		// Ask for a wake-up (renewed every round; it lapses after three
		// poll intervals if this process dies), then try once more before
		// waiting, so that a release between the try and the row is seen.
		if err := p.exec(ctx, true, func(ctx context.Context, c *pgxpool.Conn) error {
			_, err := c.Exec(ctx, p.q.wait, key, token, micros(3*p.poll))
			return err
		}); err != nil {
			if ctx.Err() != nil {
				err = provider.CtxError(ctx)
			}
			p.unwait(ctx, key, token) // the row may exist (also when it was already there)
			return provider.Grant{}, fmt.Errorf("pgprovider: acquire %q: %w", key, err)
		}
		if !registered {
			registered = true
			continue
		}
		wait := time.Duration(float64(p.poll) * (0.5 + rand.Float64()))
		if rest > 0 && rest < wait {
			wait = rest
		}
		timer := time.NewTimer(wait)
		select {
		case <-wake:
		case <-timer.C:
		case <-ctx.Done():
		case <-p.closed:
			timer.Stop()
			p.unwait(ctx, key, token)
			return provider.Grant{}, errClosed("acquire")
		}
		timer.Stop()
	}
}

// unwait deletes the waiter's row, so that a newcomer is not queued behind
// a waiter that gave up, and wakes the next waiter if the key is free. It
// runs even if ctx has ended, bounded by giveUpTimeout; a row left behind
// lapses by itself (after three poll intervals, during which it holds up
// the queue if it is the head).
func (p *Provider) unwait(ctx context.Context, key, token string) {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), giveUpTimeout)
	defer cancel()
	_ = p.exec(uctx, true, func(ctx context.Context, c *pgxpool.Conn) error {
		var ignored any
		err := c.QueryRow(ctx, p.q.unwait, key, token).Scan(&ignored)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
}

// Release implements provider.Provider.
func (p *Provider) Release(ctx context.Context, key, token string) error {
	if err := cmp.Or(provider.CheckKey(key), provider.CheckToken(token)); err != nil {
		return fmt.Errorf("pgprovider: release: %w", err)
	}
	if p.isClosed() {
		return errClosed("release")
	}
	err := p.exec(ctx, true, func(ctx context.Context, c *pgxpool.Conn) error {
		var ignored any
		return c.QueryRow(ctx, p.q.release, key, token).Scan(&ignored)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("pgprovider: release %q: %w", key, provider.ErrNotHeld)
	case err != nil:
		return fmt.Errorf("pgprovider: release %q: %w", key, err)
	}
	return nil
}

// Extend implements provider.Provider.
func (p *Provider) Extend(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	if err := checkArgs(key, token, ttl); err != nil {
		return provider.Grant{}, fmt.Errorf("pgprovider: extend: %w", err)
	}
	if p.isClosed() {
		return provider.Grant{}, errClosed("extend")
	}
	start := time.Now()
	var fence int64
	err := p.exec(ctx, true, func(ctx context.Context, c *pgxpool.Conn) error {
		return c.QueryRow(ctx, p.q.extend, key, token, micros(ttl)).Scan(&fence)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return provider.Grant{}, fmt.Errorf("pgprovider: extend %q: %w", key, provider.ErrNotHeld)
	case err != nil:
		return provider.Grant{}, fmt.Errorf("pgprovider: extend %q: %w", key, err)
	}
	return provider.Grant{Fence: uint64(fence), Expires: start.Add(ttl)}, nil
}

// State implements provider.Provider.
func (p *Provider) State(ctx context.Context, key string) (provider.State, error) {
	if err := provider.CheckKey(key); err != nil {
		return provider.State{}, fmt.Errorf("pgprovider: state: %w", err)
	}
	if p.isClosed() {
		return provider.State{}, errClosed("state")
	}
	var (
		s           provider.State
		fence, rest int64
	)
	err := p.exec(ctx, false, func(ctx context.Context, c *pgxpool.Conn) error {
		return c.QueryRow(ctx, p.q.state, key).Scan(&s.Token, &fence, &rest)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return provider.State{}, nil
	case err != nil:
		return provider.State{}, fmt.Errorf("pgprovider: state %q: %w", key, err)
	}
	s.Held, s.Fence, s.TTL = true, uint64(fence), max(time.Microsecond, time.Duration(rest)*time.Microsecond)
	return s, nil
}

// ForceRelease implements provider.Provider.
func (p *Provider) ForceRelease(ctx context.Context, key string) (bool, error) {
	if err := provider.CheckKey(key); err != nil {
		return false, fmt.Errorf("pgprovider: force release: %w", err)
	}
	if p.isClosed() {
		return false, errClosed("force release")
	}
	err := p.exec(ctx, true, func(ctx context.Context, c *pgxpool.Conn) error {
		var ignored any
		return c.QueryRow(ctx, p.q.force, key).Scan(&ignored)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("pgprovider: force release %q: %w", key, err)
	}
	return true, nil
}

// Close implements provider.Provider: it stops the listener and ends
// blocked Acquire calls with ErrClosed. Holds stay in the table until they
// lapse. A second Close returns nil.
func (p *Provider) Close() error {
	p.closeOne.Do(func() {
		close(p.closed)
		p.stop()
		<-p.done
	})
	return nil
}

func checkArgs(key, token string, ttl time.Duration) error {
	return cmp.Or(provider.CheckKey(key), provider.CheckToken(token), provider.CheckTTL(ttl))
}
