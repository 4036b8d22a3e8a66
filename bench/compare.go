package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/redisprovider"
)

// config is one run's parameters (see the flags in main.go).
type config struct {
	workers       int           // W: contending workers
	turns         int           // R: turns per worker
	hold          time.Duration // H: how long each turn holds the lock
	opTime        time.Duration // timed loop length per uncontended measurement
	rounds        int           // uncontended rounds (median reported)
	handoffRounds int           // contended rounds (median utilisation reported)
	redisBin      string
	progress      io.Writer // progress lines; io.Discard for none

	sections     map[string]bool // the sections to run (see allSections); nil = all
	tputClients  []int           // concurrency levels of the throughput section
	tputTime     time.Duration   // timed run per contender, level and round
	tputRounds   int             // throughput rounds (median reported)
	memKeys      int             // distinct keys locked once, for Redis bytes per key
	memHeld      int             // locks held at once, for Redis bytes per held lock
	memWaiters   int             // waiters queued, for Redis bytes per waiter
	heapHeld     int             // leases held at once, for Go heap per lease
	churnKeys    int             // distinct keys through memprovider, for its heap afterwards
	scriptCalls  int             // calls per commandstats phase
	scriptRounds int             // rounds of every commandstats phase (median reported)
}

// allSections lists the sections of a run, in order; -sections picks some.
var allSections = []string{"uncontended", "handoff", "throughput", "cluster", "memory", "scripts", "postgres"}

// on reports whether section is part of this run.
func (c config) on(section string) bool { return c.sections == nil || c.sections[section] }

// ttl is the lease TTL everywhere: long enough that no hold in a run lapses,
// so every handoff is a release, never an expiry.
const ttl = 10 * time.Second

// Sections of the uncontended measurements.
const (
	secRedis   = "redis"
	secMem     = "mem"
	secRedlock = "redlock3"
)

// opRow is one uncontended contender: its cost profile when run alone,
// its time per op in every interleaved round, and the median of those.
type opRow struct {
	section, id, name string
	label             string
	profile           opStats
	rounds            []float64 // ns per op
	med               float64
	err               error
}

// handoffRow is one contended contender: every round, and the round with
// the median utilisation (its waits are reported with it).
type handoffRow struct {
	id, name, waiting string
	label             string
	redis             bool // reports Redis commands per turn
	rounds            []handoffStats
	med               handoffStats
	giveups           atomic.Int64 // peer Lock calls that gave up and were called again
	fenceIncs         []float64    // lockproof Redlock: fence increments per grant, one per round
	err               error
}

// results is everything one run measured.
type results struct {
	cfg      config
	machine  machineInfo
	ops      []*opRow
	handoffs []*handoffRow
	elapsed  time.Duration

	throughput []*tputRow
	memory     []*memFigure // Redis
	heap       []*heapFigure
	churn      *memChurn
	scripts    []*scriptRow
	pg         *pgResults // nil unless the postgres section ran
}

func (r *results) op(id string) *opRow {
	for _, o := range r.ops {
		if o.id == id {
			return o
		}
	}
	return nil
}

func (r *results) handoff(id string) *handoffRow {
	for _, h := range r.handoffs {
		if h.id == id {
			return h
		}
	}
	return nil
}

type opCase struct {
	section, id, name string
	label             string   // short, for the chart
	commands          []string // the Redis commands op sends, as INFO commandstats names them
	op                func(context.Context) error
}

type handoffCase struct {
	id, name, waiting string
	label             string // short, for the chart
	redis             bool
	// prepare returns the lock function for one run on key and a cleanup.
	prepare func(row *handoffRow, key string) (lockFunc, func(), error)
}

// run starts the redis-servers, measures every contender and stops the
// servers again, also when it fails. A contender that fails is reported in
// its row; run then still measures the rest and returns the first error.
func run(ctx context.Context, cfg config) (res *results, err error) {
	start := time.Now()
	res = &results{cfg: cfg, machine: readMachine(cfg.redisBin)}
	logf := func(format string, args ...any) { fmt.Fprintf(cfg.progress, format+"\n", args...) }

	var nodes []*redisServer
	defer func() {
		for _, n := range nodes {
			n.stop()
		}
	}()
	for range 3 {
		n, err := startRedis(ctx, cfg.redisBin)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	logf("redis-server on %s, %s, %s", nodes[0].addr, nodes[1].addr, nodes[2].addr)
	var clients []*redis.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for _, n := range nodes {
		clients = append(clients, n.client())
	}
	c0 := clients[0]
	uclients := []redis.UniversalClient{clients[0], clients[1], clients[2]}

	// The contenders' handles, shared by the uncontended and contended cases.
	lp, err := redisprovider.New(c0, nil)
	if err != nil {
		return nil, err
	}
	defer lp.Close()
	lsvc, err := locked.New(lp, &locked.Options{TTL: ttl, Timeout: time.Minute})
	if err != nil {
		return nil, err
	}
	defer lsvc.Close()
	mp := memprovider.New()
	defer mp.Close()
	msvc, err := locked.New(mp, &locked.Options{TTL: ttl, Timeout: time.Minute})
	if err != nil {
		return nil, err
	}
	defer msvc.Close()
	rl := redislock.New(c0)
	rs1 := redsync.New(goredis.NewPool(c0))
	rs3 := redsync.New(goredis.NewPool(clients[0]), goredis.NewPool(clients[1]), goredis.NewPool(clients[2]))
	lrl, err := redisprovider.NewRedlock(uclients, nil)
	if err != nil {
		return nil, err
	}
	defer lrl.Close()

	var seq atomic.Uint64
	token := func() string { return "bench-" + strconv.FormatUint(seq.Add(1), 10) }
	var mu sync.Mutex

	var (
		setDel    = []string{"set", "del"}
		scripts   = []string{"evalsha", "eval"}
		setScript = []string{"set", "evalsha", "eval"}
	)
	ops := []opCase{
		{secRedis, "redis_floor", "raw go-redis SET NX PX + DEL (two-round-trip floor)", "raw SET NX PX + DEL (floor)", setDel, func(ctx context.Context) error {
			const key = "bench:u:floor"
			ok, err := c0.SetNX(ctx, key, token(), ttl).Result()
			if err == nil && !ok {
				err = errors.New("key was held")
			}
			if err != nil {
				return err
			}
			return c0.Del(ctx, key).Err()
		}},
		{secRedis, "redis_lockproof", "lockproof redisprovider TryAcquire + Release", "lockproof redisprovider", scripts, func(ctx context.Context) error {
			const key = "bench:u:lockproof"
			tok := token()
			if _, err := lp.TryAcquire(ctx, key, tok, ttl); err != nil {
				return err
			}
			return lp.Release(ctx, key, tok)
		}},
		{secRedis, "redis_lockproof_service", "lockproof locked.Service TryAcquire + Lease.Release (Redis)", "lockproof locked.Service", scripts, func(ctx context.Context) error {
			l, err := lsvc.TryAcquire(ctx, "bench:u:lockproof-svc")
			if err != nil {
				return err
			}
			return l.Release(ctx)
		}},
		{secRedis, "redis_redislock", "bsm/redislock Obtain + Release", "bsm/redislock", scripts, func(ctx context.Context) error {
			l, err := rl.Obtain(ctx, "bench:u:redislock", ttl, nil)
			if err != nil {
				return err
			}
			return l.Release(ctx)
		}},
		{secRedis, "redis_redsync", "go-redsync Lock + Unlock (1 pool)", "go-redsync", setScript, redsyncOp(rs1.NewMutex("bench:u:redsync", redsync.WithExpiry(ttl)))},

		{secMem, "mem_syncmutex", "sync.Mutex Lock + Unlock", "sync.Mutex", nil, func(context.Context) error {
			mu.Lock()
			mu.Unlock() //nolint:staticcheck // an empty critical section is the point
			return nil
		}},
		{secMem, "mem_memprovider", "memprovider TryAcquire + Release", "memprovider", nil, func(ctx context.Context) error {
			if _, err := mp.TryAcquire(ctx, "bench:u:mem", "t", ttl); err != nil {
				return err
			}
			return mp.Release(ctx, "bench:u:mem", "t")
		}},
		{secMem, "mem_memprovider_acquire", "memprovider Acquire + Release (free key)", "memprovider Acquire", nil, func(ctx context.Context) error {
			if _, err := mp.Acquire(ctx, "bench:u:mem-acquire", "t", ttl); err != nil {
				return err
			}
			return mp.Release(ctx, "bench:u:mem-acquire", "t")
		}},
		{secMem, "mem_service", "lockproof locked.Service TryAcquire + Lease.Release (memprovider)", "locked.Service (mem)", nil, func(ctx context.Context) error {
			l, err := msvc.TryAcquire(ctx, "bench:u:mem-svc")
			if err != nil {
				return err
			}
			return l.Release(ctx)
		}},

		{secRedlock, "redlock3_floor", "raw SET NX PX + DEL on 3 nodes in parallel (floor)", "3 nodes: raw parallel floor", setDel, func(ctx context.Context) error {
			const key = "bench:u:floor3"
			tok := token()
			if err := fanOut3(clients, func(c *redis.Client) error {
				ok, err := c.SetNX(ctx, key, tok, ttl).Result()
				if err == nil && !ok {
					err = errors.New("key was held")
				}
				return err
			}); err != nil {
				return err
			}
			return fanOut3(clients, func(c *redis.Client) error { return c.Del(ctx, key).Err() })
		}},
		{secRedlock, "redlock3_lockproof", "lockproof redisprovider.NewRedlock (3 nodes) TryAcquire + Release", "3 nodes: lockproof Redlock", scripts, func(ctx context.Context) error {
			const key = "bench:u:redlock"
			tok := token()
			if _, err := lrl.TryAcquire(ctx, key, tok, ttl); err != nil {
				return err
			}
			return lrl.Release(ctx, key, tok)
		}},
		{secRedlock, "redlock3_redsync", "go-redsync Lock + Unlock (3 pools)", "3 nodes: go-redsync", setScript, redsyncOp(rs3.NewMutex("bench:u:redsync3", redsync.WithExpiry(ttl)))},
	}
	ops = append(ops, entityCases(c0, lp)...)

	for _, c := range ops {
		res.ops = append(res.ops, &opRow{section: c.section, id: c.id, name: c.name, label: c.label})
	}
	if !cfg.on("uncontended") {
		ops = nil
	}
	var firstErr error
	fail := func(row *opRow, err error) {
		row.err = err
		firstErr = cmpErr(firstErr, fmt.Errorf("%s: %w", row.id, err))
		logf("uncontended %-26s FAILED: %v", row.id, err)
	}
	// First each contender alone: its cost profile (commands, time inside
	// Redis, allocations) and the block size for the interleaved timing.
	for i, c := range ops {
		row := res.ops[i]
		var cpu func(context.Context) (time.Duration, error)
		if c.section != secMem {
			cpu = func(ctx context.Context) (time.Duration, error) { return execTime(ctx, clients, c.commands) }
		}
		st, err := timeOp(ctx, cfg.opTime, c.op, cpu)
		if err != nil {
			fail(row, err)
			continue
		}
		row.profile = st
		logf("profile %-26s %10s/op %4.1f cmds/op %10s in Redis/op %6.1f allocs/op",
			c.id, fmtNs(st.nsPerOp), st.cmdsPerOp, fmtNs(st.serverPerOp), st.allocsPerOp)
	}
	// Then the timing: each section's contenders interleaved, once a round.
	for r := range cfg.rounds {
		for _, sec := range []string{secRedis, secMem, secRedlock, secEntity} {
			var (
				rows   []*opRow
				fns    []func(context.Context) error
				blocks []int
			)
			for i, c := range ops {
				if c.section == sec && res.ops[i].err == nil {
					rows, fns, blocks = append(rows, res.ops[i]), append(fns, c.op), append(blocks, blockFor(res.ops[i].profile))
				}
			}
			if len(rows) == 0 {
				continue
			}
			ns, bad, err := timeInterleaved(ctx, cfg.opTime, fns, blocks)
			if err != nil {
				if bad < 0 {
					return res, err
				}
				fail(rows[bad], err)
				continue
			}
			var line []string
			for i, row := range rows {
				row.rounds = append(row.rounds, ns[i])
				line = append(line, row.id+" "+fmtNs(ns[i]))
			}
			logf("uncontended %d/%d %s", r+1, cfg.rounds, strings.Join(line, ", "))
		}
	}
	setMedianRound(res.ops)

	cases := handoffCases(lsvc, mp, rl, rs1, lrl, cfg.workers, nodes[0])
	if !cfg.on("handoff") {
		cases = nil
	}
	for _, c := range cases {
		res.handoffs = append(res.handoffs, &handoffRow{id: c.id, name: c.name, waiting: c.waiting, label: c.label, redis: c.redis})
	}
	for r := range cfg.handoffRounds {
		for i, c := range cases {
			row := res.handoffs[i]
			if row.err != nil {
				continue
			}
			st, err := runHandoff(ctx, cfg, c, row, fmt.Sprintf("bench:h:%s:%d", c.id, r))
			if err != nil {
				row.err = err
				firstErr = cmpErr(firstErr, fmt.Errorf("%s: %w", c.id, err))
				logf("handoff %d/%d %-24s FAILED: %v", r+1, cfg.handoffRounds, c.id, err)
				continue
			}
			row.rounds = append(row.rounds, st)
			logf("handoff %d/%d %-18s util %.3f p50 %-9s p99 %-9s max %-9s gap %-9s barged %3.0f%% cmds/turn %.1f",
				r+1, cfg.handoffRounds, c.id, st.util, fmtDur(st.p50), fmtDur(st.p99), fmtDur(st.max), fmtDur(st.gap), 100*st.barged, st.cmdsPerTurn)
		}
	}
	for _, row := range res.handoffs {
		if row.err == nil && len(row.rounds) > 0 {
			row.med = medianHandoff(row.rounds)
		}
	}
	firstErr = cmpErr(firstErr, runAtScale(ctx, cfg, res, nodes[0], logf))
	if cfg.on("postgres") {
		res.pg = runPostgres(ctx, cfg, logf)
		if res.pg.err != nil {
			firstErr = cmpErr(firstErr, fmt.Errorf("postgres: %w", res.pg.err))
		}
	}
	res.elapsed = time.Since(start)
	return res, firstErr
}

// runAtScale runs the sections of cost at scale: throughput on one node
// and on a 3-master Cluster, memory (Redis and Go heap) and script cost,
// the last two on a redis-server of their own. It returns the first error;
// every figure that failed says so in res.
func runAtScale(ctx context.Context, cfg config, res *results, node *redisServer, logf func(string, ...any)) error {
	var firstErr error
	note := func(what string, err error) {
		if err != nil {
			firstErr = cmpErr(firstErr, fmt.Errorf("%s: %w", what, err))
		}
	}
	pool := 2*slices.Max(append([]int{memWorkers}, cfg.tputClients...)) + 8
	newClient := func(addr string) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: pool, ContextTimeoutEnabled: true})
		c.AddHook(commandCounter{})
		return c
	}
	var tops []tputTopology
	if cfg.on("throughput") {
		c := newClient(node.addr)
		defer c.Close()
		tops = append(tops, tputTopology{name: "1 node", c: c, nodes: []*redis.Client{c}})
	}
	if cfg.on("cluster") {
		t0 := time.Now()
		cl, err := startCluster(ctx, cfg.redisBin, 3)
		note("cluster", err)
		if err == nil {
			defer func() {
				for _, n := range cl {
					n.stop()
				}
			}()
			logf("cluster of 3 masters on %s, %s, %s ready in %s", cl[0].addr, cl[1].addr, cl[2].addr, elapsedSince(t0))
			var addrs []string
			var per []*redis.Client
			for _, n := range cl {
				addrs = append(addrs, n.addr)
				pc := redis.NewClient(&redis.Options{Addr: n.addr})
				defer pc.Close()
				per = append(per, pc)
			}
			cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, PoolSize: pool, ContextTimeoutEnabled: true})
			cc.AddHook(commandCounter{})
			defer cc.Close()
			tops = append(tops, tputTopology{name: "cluster", c: cc, nodes: per})
		}
	}
	if len(tops) > 0 {
		res.throughput = runThroughput(ctx, cfg, tops, logf)
		for _, row := range res.throughput {
			note("throughput "+row.topology+" "+row.id, row.err)
		}
	}
	if cfg.on("memory") || cfg.on("scripts") {
		own, err := startRedis(ctx, cfg.redisBin)
		if err != nil {
			return cmpErr(firstErr, err)
		}
		defer own.stop()
		c := newClient(own.addr)
		defer c.Close()
		if cfg.on("memory") {
			res.memory = runRedisMemory(ctx, cfg, c, logf)
			for _, f := range res.memory {
				note("memory "+f.id, f.err)
			}
			heap, err := runHeapHeld(ctx, cfg.heapHeld)
			note("heap", err)
			res.heap = heap
			for _, f := range heap {
				logf("heap %-20s %8.1f B/lease (HeapAlloc), %8.1f B/lease (HeapInuse), %d held", f.id, f.alloc/float64(f.n), f.inuse/float64(f.n), f.n)
			}
			res.churn = runMemChurn(ctx, cfg.churnKeys)
			note("memprovider churn", res.churn.err)
			m := res.churn
			logf("memprovider churn %d keys: HeapInuse %.2f MB before, %.2f MB empty provider, %.2f MB after (%.2f B/key), %.2f MB once dropped; plain map: %.1f → %.1f → %.1f MB",
				m.n, m.before.inuse/1e6, m.fresh.inuse/1e6, m.after.inuse/1e6, m.retainedPerKey(), m.dropped.inuse/1e6, m.mapBefore.inuse/1e6, m.mapAfter.inuse/1e6, m.mapDrop.inuse/1e6)
		}
		if cfg.on("scripts") {
			res.scripts = runScripts(ctx, c, cfg.scriptCalls, cfg.scriptRounds, logf)
			for _, s := range res.scripts {
				note("script "+s.id, s.err)
			}
		}
	}
	return firstErr
}

// setMedianRound sets each row's med to its time in its section's median
// round: the round whose product of all the section's times is the median
// one. Times from one round were interleaved, so they compare directly;
// mixing rows' medians from different rounds could reverse an order.
func setMedianRound(rows []*opRow) {
	sections := map[string][]*opRow{}
	for _, row := range rows {
		if row.err == nil && len(row.rounds) > 0 {
			sections[row.section] = append(sections[row.section], row)
		}
	}
	for _, sec := range sections {
		n := len(sec[0].rounds)
		for _, row := range sec {
			n = min(n, len(row.rounds))
		}
		type round struct {
			i     int
			score float64
		}
		rs := make([]round, n)
		for i := range n {
			rs[i].i = i
			for _, row := range sec {
				rs[i].score += math.Log(row.rounds[i])
			}
		}
		slices.SortFunc(rs, func(a, b round) int { return cmp.Compare(a.score, b.score) })
		mid := rs[(n-1)/2].i
		for _, row := range sec {
			row.med = row.rounds[mid]
		}
	}
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// redsyncOp locks and unlocks m, the way redsync is used.
func redsyncOp(m *redsync.Mutex) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := m.LockContext(ctx); err != nil {
			return err
		}
		ok, err := m.UnlockContext(ctx)
		if err == nil && !ok {
			err = errors.New("redsync: unlock failed")
		}
		return err
	}
}

// fanOut3 calls fn on every client at once and waits for all.
func fanOut3(clients []*redis.Client, fn func(*redis.Client) error) error {
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(c)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runHandoff runs one contended round of c on key.
func runHandoff(ctx context.Context, cfg config, c handoffCase, row *handoffRow, key string) (handoffStats, error) {
	lock, cleanup, err := c.prepare(row, key)
	if err != nil {
		return handoffStats{}, err
	}
	defer cleanup()
	// A generous bound: the slowest peer needs a few seconds; a hang fails.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute+time.Duration(cfg.workers*cfg.turns)*(cfg.hold+100*time.Millisecond))
	defer cancel()
	st, err := handoff(ctx, cfg.workers, cfg.turns, cfg.hold, lock)
	if err == nil && st.violations > 0 {
		err = fmt.Errorf("mutual exclusion violated in %d turns", st.violations)
	}
	return st, err
}

// handoffCases lists the contended contenders. Peers are run at their
// documented default waiting and at a tight 1 ms poll.
func handoffCases(lsvc *locked.Service, mp *memprovider.Provider, rl *redislock.Client, rs *redsync.Redsync, lrl *redisprovider.Redlock, workers int, node *redisServer) []handoffCase {
	noCleanup := func() {}
	redislockCase := func(id, label, waiting string, retry func() redislock.RetryStrategy) handoffCase {
		return handoffCase{id: id, name: "bsm/redislock", label: label, waiting: waiting, redis: true,
			prepare: func(_ *handoffRow, key string) (lockFunc, func(), error) {
				return func(ctx context.Context, _ int) (func() error, error) {
					l, err := rl.Obtain(ctx, key, ttl, &redislock.Options{RetryStrategy: retry()})
					if err != nil {
						return nil, err
					}
					return func() error { return l.Release(context.Background()) }, nil
				}, noCleanup, nil
			}}
	}
	redsyncCase := func(id, label, waiting string, opts ...redsync.Option) handoffCase {
		return handoffCase{id: id, name: "go-redsync (1 pool)", label: label, waiting: waiting, redis: true,
			prepare: func(row *handoffRow, key string) (lockFunc, func(), error) {
				ms := make([]*redsync.Mutex, workers)
				for w := range ms {
					ms[w] = rs.NewMutex(key, append([]redsync.Option{redsync.WithExpiry(ttl)}, opts...)...)
				}
				return func(ctx context.Context, w int) (func() error, error) {
					m := ms[w]
					for {
						err := m.LockContext(ctx)
						if err == nil {
							break
						}
						var taken *redsync.ErrTaken
						if ctx.Err() != nil || !(errors.Is(err, redsync.ErrFailed) || errors.As(err, &taken)) {
							return nil, err
						}
						row.giveups.Add(1) // out of tries: a caller would call Lock again
					}
					return func() error {
						ok, err := m.UnlockContext(context.Background())
						if err == nil && !ok {
							err = errors.New("redsync: unlock failed")
						}
						return err
					}, nil
				}, noCleanup, nil
			}}
	}
	leaseLock := func(svcs func(w int) *locked.Service, key string) lockFunc {
		return func(ctx context.Context, w int) (func() error, error) {
			l, err := svcs(w).Acquire(ctx, key, locked.WithTimeout(time.Minute))
			if err != nil {
				return nil, err
			}
			return func() error { return l.Release(context.Background()) }, nil
		}
	}
	redlockCase := handoffCase{id: "redlock3_lockproof", label: "lockproof Redlock, 3 nodes", name: "lockproof Redlock (3 nodes)", waiting: "pub/sub wake-up, jittered retry after a split vote",
		prepare: func(row *handoffRow, key string) (lockFunc, func(), error) {
			var (
				grants atomic.Int64
				high   atomic.Uint64 // the key is new each round: its fences start at 1
				seq    atomic.Int64
			)
			lock := func(ctx context.Context, w int) (func() error, error) {
				tok := "w" + strconv.Itoa(w) + "-" + strconv.FormatInt(seq.Add(1), 10)
				g, err := lrl.Acquire(ctx, key, tok, ttl)
				if err != nil {
					return nil, err
				}
				grants.Add(1)
				for h := high.Load(); g.Fence > h && !high.CompareAndSwap(h, g.Fence); h = high.Load() {
				}
				return func() error { return lrl.Release(context.Background(), key, tok) }, nil
			}
			return lock, func() {
				if n := grants.Load(); n > 0 {
					row.fenceIncs = append(row.fenceIncs, float64(high.Load())/float64(n))
				}
			}, nil
		}}
	return []handoffCase{
		redlockCase,
		{id: "syncmutex", label: "sync.Mutex", name: "sync.Mutex (in-process reference)", waiting: "runtime semaphore",
			prepare: func(*handoffRow, string) (lockFunc, func(), error) {
				var mu sync.Mutex
				return func(context.Context, int) (func() error, error) {
					mu.Lock()
					return func() error { mu.Unlock(); return nil }, nil
				}, noCleanup, nil
			}},
		{id: "memprovider", label: "lockproof memprovider", name: "lockproof memprovider", waiting: "FIFO queue, channel wake-up",
			prepare: func(_ *handoffRow, key string) (lockFunc, func(), error) {
				return func(ctx context.Context, w int) (func() error, error) {
					tok := "w" + strconv.Itoa(w)
					if _, err := mp.Acquire(ctx, key, tok, ttl); err != nil {
						return nil, err
					}
					return func() error { return mp.Release(context.Background(), key, tok) }, nil
				}, noCleanup, nil
			}},
		{id: "lockproof", label: "lockproof Redis, one Service", name: "lockproof redisprovider (one Service)", waiting: "handoff in the release, pub/sub (default options)", redis: true,
			prepare: func(_ *handoffRow, key string) (lockFunc, func(), error) {
				return leaseLock(func(int) *locked.Service { return lsvc }, key), noCleanup, nil
			}},
		{id: "lockproof_procs", label: "lockproof Redis, Service per worker", name: "lockproof redisprovider (client+Service per worker, like W processes)", waiting: "handoff in the release, pub/sub (default options)", redis: true,
			prepare: func(_ *handoffRow, key string) (lockFunc, func(), error) {
				var closers []func() error
				cleanup := func() {
					for i := len(closers) - 1; i >= 0; i-- {
						_ = closers[i]()
					}
				}
				svcs := make([]*locked.Service, workers)
				for w := range svcs {
					c := node.client()
					closers = append(closers, c.Close)
					p, err := redisprovider.New(c, nil)
					if err != nil {
						cleanup()
						return nil, nil, err
					}
					closers = append(closers, p.Close)
					s, err := locked.New(p, &locked.Options{TTL: ttl})
					if err != nil {
						cleanup()
						return nil, nil, err
					}
					closers = append(closers, s.Close)
					svcs[w] = s
				}
				return leaseLock(func(w int) *locked.Service { return svcs[w] }, key), cleanup, nil
			}},
		redislockCase("redislock_default", "redislock, 100 ms backoff", "LinearBackoff(100ms) (README example; default is no retry)",
			func() redislock.RetryStrategy { return redislock.LinearBackoff(100 * time.Millisecond) }),
		redislockCase("redislock_1ms", "redislock, 1 ms backoff", "LinearBackoff(1ms)",
			func() redislock.RetryStrategy { return redislock.LinearBackoff(time.Millisecond) }),
		redsyncCase("redsync_default", "redsync, default 50–250 ms", "default: 32 tries, random 50–250 ms"),
		redsyncCase("redsync_1ms", "redsync, 1 ms retry", "WithRetryDelay(1ms), unlimited tries",
			redsync.WithRetryDelay(time.Millisecond), redsync.WithTries(math.MaxInt32)),
	}
}

func medianHandoff(rounds []handoffStats) handoffStats {
	us := make([]float64, len(rounds))
	for i, r := range rounds {
		us[i] = r.util
	}
	m := median(us)
	for _, r := range rounds {
		if r.util == m {
			return r
		}
	}
	return rounds[0]
}
