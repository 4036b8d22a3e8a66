package main

// Memory at scale (section 7): what a lock costs to keep, in Redis
// (INFO memory used_memory, on a redis-server of its own so nothing else
// moves it) and in the Go heap (runtime.MemStats after a GC):
//
//   - Redis bytes per key ever locked: N distinct keys locked once and
//     released; lockproof keeps one fence counter per hash slot (at most
//     16384, shared by the keys of the slot), none per key;
//   - Redis bytes per waiter, queued on one key and one per key;
//   - Redis bytes per held lock: provider tokens, Service tokens, redislock;
//   - memprovider after 1M distinct keys locked and released: does the heap
//     return to where it was?
//   - Go heap per held lease: locked.Service vs memprovider alone vs a keyed
//     sync.Mutex map.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bsm/redislock"
	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/redisprovider"
)

var nan = math.NaN()

// memFigure is one memory measurement: total bytes for n units.
type memFigure struct {
	id, name, unit string
	n              int
	bytes          float64 // total used_memory delta (NaN if not read)
	usage          float64 // mean MEMORY USAGE of one unit's keys
	keysLeft       int64   // Redis keys left afterwards (-1 if not counted)
	note           string
	err            error
}

// perUnit returns used_memory bytes per unit.
func (f *memFigure) perUnit() float64 {
	if f == nil || f.err != nil || f.n == 0 {
		return nan
	}
	return f.bytes / float64(f.n)
}

// usagePerUnit returns MEMORY USAGE bytes per unit.
func (f *memFigure) usagePerUnit() float64 {
	if f == nil || f.err != nil || f.n == 0 {
		return nan
	}
	return f.usage
}

// memFig returns the figure id, or nil.
func (r *results) memFig(id string) *memFigure {
	for _, f := range r.memory {
		if f.id == id && f.err == nil {
			return f
		}
	}
	return nil
}

// parallel calls fn(i) for every i < n on workers goroutines and returns
// the first error.
func parallel(n, workers int, fn func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += workers {
				if err := fn(i); err != nil {
					mu.Lock()
					first = cmpErr(first, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// memWorkers is how many goroutines fill Redis in the memory section; the
// client's pool holds at least this many connections, dialled before the
// first reading so that connections do not count as data.
const memWorkers = 16

// redisDelta returns how much used_memory grew across fill.
func redisDelta(ctx context.Context, c *redis.Client, fill func() error) (float64, error) {
	runtime.GC() // nothing to do with Redis, but keeps the client side quiet
	m0, err := settledMemory(ctx, c)
	if err != nil {
		return 0, err
	}
	if err := fill(); err != nil {
		return 0, err
	}
	m1, err := settledMemory(ctx, c)
	if err != nil {
		return 0, err
	}
	return m1 - m0, nil
}

// settledMemory returns usedMemory once two readings 50 ms apart agree
// (background work such as rehashing a dict or trimming buffers has
// finished), or the last reading after a second.
func settledMemory(ctx context.Context, c *redis.Client) (float64, error) {
	last, err := usedMemory(ctx, c)
	for range 20 {
		if err != nil {
			return 0, err
		}
		time.Sleep(50 * time.Millisecond)
		var m float64
		if m, err = usedMemory(ctx, c); err == nil && m == last {
			return m, nil
		}
		last = m
	}
	return last, err
}

// warmPool dials n connections of c (n concurrent 10 ms BLPOPs on a
// missing key) so that the pool does not grow while memory is measured.
func warmPool(ctx context.Context, c *redis.Client, n int) error {
	return parallel(n, n, func(int) error {
		err := c.Do(ctx, "BLPOP", "bench:nokey", "0.01").Err() // go-redis's BLPop rounds up to 1 s
		if errors.Is(err, redis.Nil) {
			err = nil
		}
		return err
	})
}

// runRedisMemory measures the Redis figures on the server behind c (its
// own node; it is flushed first).
func runRedisMemory(ctx context.Context, cfg config, c *redis.Client, logf func(string, ...any)) []*memFigure {
	var figs []*memFigure
	add := func(f *memFigure) {
		figs = append(figs, f)
		if f.err != nil {
			logf("memory %-28s FAILED: %v", f.id, f.err)
			return
		}
		logf("memory %-16s MEMORY USAGE %6.1f B/%s, used_memory %7.1f B/%s, n %d, keys left %d", f.id, f.usagePerUnit(), f.unit, f.perUnit(), f.unit, f.n, f.keysLeft)
	}
	if err := c.FlushAll(ctx).Err(); err != nil {
		return []*memFigure{{id: "setup", err: err}}
	}
	if err := warmPool(ctx, c, memWorkers); err != nil {
		return []*memFigure{{id: "setup", err: err}}
	}
	p, err := redisprovider.New(c, &redisprovider.Options{Prefix: "bench:m:"})
	if err != nil {
		return []*memFigure{{id: "setup", err: err}}
	}
	defer p.Close()
	svc, err := locked.New(p, &locked.Options{TTL: ttl, Timeout: time.Minute})
	if err != nil {
		return []*memFigure{{id: "setup", err: err}}
	}
	defer svc.Close()
	rl := redislock.New(c)
	dbsize := func() int64 { n, _ := c.DBSize(ctx).Result(); return n }

	// Keys ever locked: N distinct keys locked once and released.
	n := cfg.memKeys
	ever := func(id, name string, keysOf func(i int) []string, lockOnce func(i int) error) {
		// A short warm-up loads the scripts and the provider's subscription.
		for i := range 10 {
			if err := lockOnce(-1 - i); err != nil {
				add(&memFigure{id: id, err: err})
				return
			}
		}
		_ = c.FlushAll(ctx).Err()
		before := dbsize()
		d, err := redisDelta(ctx, c, func() error { return parallel(n, memWorkers, lockOnce) })
		f := &memFigure{id: id, name: name, unit: "key", n: n, bytes: d, keysLeft: dbsize() - before, err: err}
		if err == nil {
			f.usage, f.err = meanUsage(ctx, c, n, keysOf)
		}
		add(f)
	}
	ever("ever_lockproof", "lockproof: key locked once and released (its slot's fence counter is shared, at most 16384)", func(i int) []string {
		lock := lockKey(p, "e"+strconv.Itoa(i))
		return []string{lock, lock + ":queue", lock + ":alive"}
	}, func(i int) error {
		key, tok := "e"+strconv.Itoa(i), "t"+strconv.Itoa(i)
		if _, err := p.TryAcquire(ctx, key, tok, ttl); err != nil {
			return err
		}
		return p.Release(ctx, key, tok)
	})
	if f := figs[len(figs)-1]; f.id == "ever_lockproof" && f.err == nil {
		f.note = "keys left: the release markers (they lapse after the client's re-send window, " +
			"about 20 s with go-redis's default retries; none with MaxRetries -1) and the slot counters below"
	}
	add(slotCounters(ctx, c, p, n))
	ever("ever_redislock", "bsm/redislock: key locked once and released", func(i int) []string {
		return []string{"bench:r:e" + strconv.Itoa(i)}
	}, func(i int) error {
		l, err := rl.Obtain(ctx, "bench:r:e"+strconv.Itoa(i), ttl, nil)
		if err != nil {
			return err
		}
		return l.Release(ctx)
	})
	_ = c.FlushAll(ctx).Err()

	// Held locks: N held at once, then released.
	h := cfg.memHeld
	held := func(id, name string, keysOf func(i int) []string, lock func(i int) (func() error, error)) {
		unlocks := make([]func() error, h)
		if u, err := lock(-1); err == nil { // warm-up: scripts loaded
			_ = u()
		}
		_ = c.FlushAll(ctx).Err()
		d, err := redisDelta(ctx, c, func() error {
			return parallel(h, memWorkers, func(i int) error {
				u, err := lock(i)
				unlocks[i] = u
				return err
			})
		})
		left := dbsize()
		var usage float64
		if err == nil {
			usage, err = meanUsage(ctx, c, h, keysOf)
		}
		for _, u := range unlocks {
			if u != nil {
				_ = u()
			}
		}
		add(&memFigure{id: id, name: name, unit: "lock", n: h, bytes: d, usage: usage, keysLeft: left, err: err})
	}
	held("held_lockproof", "lockproof redisprovider, token \"t<n>\" (short)", func(i int) []string {
		return []string{lockKey(p, "h"+strconv.Itoa(i))} // the slot's counter is shared
	}, func(i int) (func() error, error) {
		key, tok := "h"+strconv.Itoa(i), "t"+strconv.Itoa(i)
		if _, err := p.TryAcquire(ctx, key, tok, ttl); err != nil {
			return nil, err
		}
		return func() error { return p.Release(ctx, key, tok) }, nil
	})
	var tokLen int
	held("held_service", "lockproof locked.Service (its own tokens)", func(i int) []string {
		return []string{lockKey(p, "s"+strconv.Itoa(i))} // the slot's counter is shared
	}, func(i int) (func() error, error) {
		l, err := svc.TryAcquire(ctx, "s"+strconv.Itoa(i))
		if err != nil {
			return nil, err
		}
		tokLen = len(l.Token())
		return func() error { return l.Release(ctx) }, nil
	})
	if f := figs[len(figs)-1]; f.err == nil {
		f.note = fmt.Sprintf("Service tokens are %d characters", tokLen)
	}
	held("held_redislock", "bsm/redislock (22-character token)", func(i int) []string { return []string{"bench:r:h" + strconv.Itoa(i)} }, func(i int) (func() error, error) {
		l, err := rl.Obtain(ctx, "bench:r:h"+strconv.Itoa(i), ttl, nil)
		if err != nil {
			return nil, err
		}
		return func() error { return l.Release(ctx) }, nil
	})

	// Waiters: W waiters on one held key, and one waiter on each of W keys.
	w := cfg.memWaiters
	// A first, unmeasured round loads what waiting needs once (the scripts
	// of waiting and giving up, the Lua heap): about 1 MB that no waiter adds.
	if f := waiters(ctx, c, p, "warmup", "", 2, 4); f.err != nil {
		add(f)
	}
	add(waiters(ctx, c, p, "waiter_one_key", "lockproof: waiters queued on one held key (MEMORY USAGE of queue + deadlines)", 1, w))
	add(waiters(ctx, c, p, "waiter_per_key", "lockproof: one waiter on each of W held keys (the same, a queue per key)", w, w))
	return figs
}

// waiters holds nkeys keys and queues w waiters on them (round robin), and
// returns what the waiters' queue and deadline keys take (MEMORY USAGE,
// all samples).
func waiters(ctx context.Context, c *redis.Client, p *redisprovider.Provider, id, name string, nkeys, w int) *memFigure {
	fig := &memFigure{id: id, name: name, unit: "waiter", n: w}
	_ = c.FlushAll(ctx).Err()
	keys := tputKeyNames("w"+id+":", nkeys)
	for _, k := range keys {
		if _, err := p.TryAcquire(ctx, k, "holder", ttl); err != nil {
			fig.err = err
			return fig
		}
	}
	defer func() {
		for _, k := range keys {
			_ = p.Release(ctx, k, "holder")
		}
	}()
	queued := func() (int64, error) {
		var total int64
		for _, k := range keys {
			n, err := c.LLen(ctx, lockKey(p, k)+":queue").Result()
			if err != nil {
				return 0, err
			}
			total += n
		}
		return total, nil
	}
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		// The waiters' give-ups land in the background: wait for their
		// queues to go, so that they do not move the next measurement.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if n, err := queued(); err != nil || n == 0 {
				break
			}
		}
	}()
	for i := range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := keys[i%nkeys]
			if _, err := p.Acquire(wctx, k, "waiter-"+strconv.Itoa(i), ttl); err == nil {
				_ = p.Release(ctx, k, "waiter-"+strconv.Itoa(i))
			}
		}()
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n, err := queued()
		if err != nil {
			fig.err = err
			return fig
		}
		if n == int64(w) {
			break
		}
		if time.Now().After(deadline) {
			fig.err = fmt.Errorf("only %d of %d waiters queued after 20s", n, w)
			return fig
		}
	}
	// MEMORY USAGE of the queue and deadline keys: the waiters' data alone
	// (used_memory moves with the Lua heap and background give-ups).
	for _, k := range keys {
		for _, suffix := range []string{":queue", ":alive"} {
			u, err := c.MemoryUsage(ctx, lockKey(p, k)+suffix, 0).Result()
			if err != nil {
				fig.err = fmt.Errorf("MEMORY USAGE %s: %w", lockKey(p, k)+suffix, err)
				return fig
			}
			fig.usage += float64(u)
		}
	}
	fig.usage /= float64(w)
	fig.keysLeft, fig.bytes = -1, nan
	return fig
}

// usageSample is how many units meanUsage asks MEMORY USAGE about.
const usageSample = 200

// meanUsage returns the mean over units 0.. of Σ MEMORY USAGE (all
// samples) of keysOf(unit), a missing key counting 0: the bytes Redis
// itself accounts to a unit's keys, without the main dict's bucket array
// (used_memory has that, and the noise of connection buffers).
func meanUsage(ctx context.Context, c *redis.Client, n int, keysOf func(i int) []string) (float64, error) {
	m := min(n, usageSample)
	total := 0.0
	for i := range m {
		for _, k := range keysOf(i) {
			u, err := c.MemoryUsage(ctx, k, 0).Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				return 0, fmt.Errorf("MEMORY USAGE %s: %w", k, err)
			}
			total += float64(u)
		}
	}
	return total / float64(m), nil
}

// heapFigure is one Go heap measurement (runtime.MemStats after GC).
type heapFigure struct {
	id, name string
	n        int
	alloc    float64 // HeapAlloc delta, bytes
	inuse    float64 // HeapInuse delta, bytes
}

func (f *heapFigure) perUnit() float64 {
	if f == nil || f.n == 0 {
		return nan
	}
	return f.alloc / float64(f.n)
}

func (r *results) heapFig(id string) *heapFigure {
	for _, f := range r.heap {
		if f.id == id {
			return f
		}
	}
	return nil
}

// heapNow returns HeapAlloc and HeapInuse after a full GC.
func heapNow() (alloc, inuse float64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc), float64(ms.HeapInuse)
}

// heapDelta returns how much the heap (after GC) grew across fill. What
// fill allocates and keeps reachable counts; keep must keep it reachable
// until the second reading.
func heapDelta(fill func()) (alloc, inuse float64) {
	a0, i0 := heapNow()
	fill()
	a1, i1 := heapNow()
	return a1 - a0, i1 - i0
}

// keyedMutexes is the simplest in-process keyed lock: a map of mutexes.
type keyedMutexes struct {
	mu sync.Mutex // guards m
	m  map[string]*sync.Mutex
}

func (k *keyedMutexes) lock(key string) {
	k.mu.Lock()
	m := k.m[key]
	if m == nil {
		m = new(sync.Mutex)
		k.m[key] = m
	}
	k.mu.Unlock()
	m.Lock()
}

// runHeapHeld measures the Go heap per held lock for n keys held at once.
func runHeapHeld(ctx context.Context, n int) ([]*heapFigure, error) {
	keys := tputKeyNames("bench:heap:", n)
	toks := tputKeyNames("t", n)
	var figs []*heapFigure

	var km *keyedMutexes
	a, i := heapDelta(func() {
		km = &keyedMutexes{m: map[string]*sync.Mutex{}}
		for _, k := range keys {
			km.lock(k)
		}
	})
	figs = append(figs, &heapFigure{"heap_syncmutex_map", "keyed sync.Mutex map (map[string]*sync.Mutex, held)", n, a, i})
	runtime.KeepAlive(km)

	var mp *memprovider.Provider
	var err error
	a, i = heapDelta(func() {
		mp = memprovider.New()
		for j, k := range keys {
			if _, e := mp.TryAcquire(ctx, k, toks[j], ttl); e != nil {
				err = cmpErr(err, e)
			}
		}
	})
	mp.Close()
	if err != nil {
		return nil, err
	}
	figs = append(figs, &heapFigure{"heap_memprovider", "memprovider alone, held (token given)", n, a, i})

	mp2 := memprovider.New()
	defer mp2.Close()
	svc, err := locked.New(mp2, &locked.Options{TTL: ttl, Timeout: time.Minute})
	if err != nil {
		return nil, err
	}
	defer svc.Close()
	leases := make([]*locked.Lease, n)
	a, i = heapDelta(func() {
		for j, k := range keys {
			l, e := svc.TryAcquire(ctx, k)
			if e != nil {
				err = cmpErr(err, e)
				continue
			}
			leases[j] = l
		}
	})
	if err != nil {
		return nil, err
	}
	figs = append(figs, &heapFigure{"heap_service", "locked.Service lease on memprovider, held (incl. the provider's entry)", n, a, i})
	for _, l := range leases {
		if err := l.Release(ctx); err != nil {
			return nil, err
		}
	}
	return figs, nil
}

// memChurn is the memprovider figure: the heap before, after locking and
// releasing n distinct keys, and after dropping the provider.
type memChurn struct {
	n                            int
	before, fresh, after         heapPoint // before New, after New, after the keys
	dropped                      heapPoint // once the provider is unreachable
	mapBefore, mapAfter, mapDrop heapPoint // the same on a plain map with delete
	held                         int       // memprovider.Len() after (keys held)
	burst                        int       // keys held at once, then released
	burstBefore, burstHeld       heapPoint
	burstAfter                   heapPoint
	err                          error
}

type heapPoint struct{ alloc, inuse float64 }

func heapPointNow() heapPoint {
	a, i := heapNow()
	return heapPoint{a, i}
}

// retainedPerKey returns (after − before) HeapInuse ÷ n.
func (m *memChurn) retainedPerKey() float64 {
	if m == nil || m.err != nil || m.n == 0 {
		return nan
	}
	return (m.after.inuse - m.before.inuse) / float64(m.n)
}

// burstRetainedPerKey returns HeapInuse after the burst was released,
// over before it, per key of the burst.
func (m *memChurn) burstRetainedPerKey() float64 {
	if m == nil || m.err != nil || m.burst == 0 {
		return nan
	}
	return (m.burstAfter.inuse - m.burstBefore.inuse) / float64(m.burst)
}

// retainedOverEmpty returns (after − empty provider) HeapInuse, bytes:
// what the keys left behind, beyond the provider's own shards.
func (m *memChurn) retainedOverEmpty() float64 {
	if m == nil || m.err != nil {
		return nan
	}
	return m.after.inuse - m.fresh.inuse
}

// runMemChurn locks and releases n distinct keys on a fresh memprovider
// and reads the heap before, after and once the provider is dropped; then
// the same with a plain map[string]*T that inserts and deletes every key,
// which shows what Go's maps keep after deletes.
func runMemChurn(ctx context.Context, n int) *memChurn {
	m := &memChurn{n: n}
	m.before = heapPointNow()
	p := memprovider.New()
	m.fresh = heapPointNow()
	for i := range n {
		key := "churn:" + strconv.Itoa(i)
		if _, err := p.TryAcquire(ctx, key, "t", ttl); err != nil {
			m.err = err
			break
		}
		if err := p.Release(ctx, key, "t"); err != nil {
			m.err = err
			break
		}
	}
	m.after = heapPointNow()
	m.held = p.Len()
	p.Close()
	runtime.KeepAlive(p)
	p = nil
	m.dropped = heapPointNow()

	type entry struct {
		token string
		fence uint64
	}
	m.mapBefore = heapPointNow()
	mm := map[string]*entry{}
	for i := range n {
		mm["churn:"+strconv.Itoa(i)] = &entry{token: "t", fence: uint64(i)}
	}
	for key := range mm {
		delete(mm, key)
	}
	m.mapAfter = heapPointNow()
	if len(mm) != 0 {
		m.err = cmpErr(m.err, errors.New("map not empty"))
	}
	runtime.KeepAlive(mm)
	mm = nil
	m.mapDrop = heapPointNow()

	// A burst: every key held at once, then all released, and no new key
	// locked afterwards (the sweep runs only when a new key is inserted).
	m.burst = min(n, maxBurst)
	m.burstBefore = heapPointNow()
	bp := memprovider.New()
	for i := range m.burst {
		if _, err := bp.TryAcquire(ctx, "burst:"+strconv.Itoa(i), "t", ttl); err != nil {
			m.err = cmpErr(m.err, err)
			break
		}
	}
	m.burstHeld = heapPointNow()
	for i := range m.burst {
		if err := bp.Release(ctx, "burst:"+strconv.Itoa(i), "t"); err != nil {
			m.err = cmpErr(m.err, err)
			break
		}
	}
	m.burstAfter = heapPointNow()
	bp.Close()
	runtime.KeepAlive(bp)
	return m
}

// maxBurst bounds the keys held at once in the burst measurement.
const maxBurst = 200_000

// memMarkdown renders the memory tables.
func (r *results) memMarkdown(b *strings.Builder) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	p("Redis, on a redis-server of its own: MEMORY USAGE (all samples) of a unit's keys, averaged over %d units, and INFO memory `used_memory` after − before ÷ n (settled readings; it adds the main dict's buckets and moves with connection buffers, so trust it at large n only).", usageSample)
	p("")
	p("| figure | n | MEMORY USAGE per unit | used_memory delta per unit | Redis keys left | note |")
	p("|---|--:|--:|--:|--:|---|")
	for _, f := range r.memory {
		if f.err != nil {
			p("| %s | failed: %s | | | | |", cmp.Or(f.name, f.id), mdEscape(f.err.Error()))
			continue
		}
		left := "–"
		if f.keysLeft >= 0 {
			left = strconv.FormatInt(f.keysLeft, 10)
		}
		delta := "–"
		if !math.IsNaN(f.bytes) {
			delta = fmt.Sprintf("%.1f B", f.perUnit())
		}
		p("| %s | %d | **%.1f B/%s** | %s | %s | %s |", f.name, f.n, f.usagePerUnit(), f.unit, delta, left, mdEscape(f.note))
	}
	p("")
	p("Go heap: runtime.MemStats after two GCs, before and while n leases are held (key strings allocated before the first reading).")
	p("")
	p("| lock | n held | HeapAlloc per lease | HeapInuse per lease |")
	p("|---|--:|--:|--:|")
	for _, f := range r.heap {
		p("| %s | %d | **%.0f B** | %.0f B |", f.name, f.n, f.perUnit(), f.inuse/float64(f.n))
	}
	p("")
	if m := r.churn; m != nil {
		p("memprovider after %d distinct keys locked once and released (TryAcquire + Release), HeapInuse / HeapAlloc after GC:", m.n)
		p("")
		p("| heap | before | empty provider | after | (after − before) ÷ keys | provider dropped |")
		p("|---|--:|--:|--:|--:|--:|")
		if m.err != nil {
			p("| memprovider | failed: %s | | | | |", mdEscape(m.err.Error()))
		} else {
			row := func(name string, b, f, a, d heapPoint) {
				p("| %s HeapInuse | %s | %s | **%s** | %.2f B | %s |", name, fmtBytes(b.inuse), fmtBytes(f.inuse), fmtBytes(a.inuse), (a.inuse-b.inuse)/float64(m.n), fmtBytes(d.inuse))
				p("| %s HeapAlloc | %s | %s | %s | %.2f B | %s |", name, fmtBytes(b.alloc), fmtBytes(f.alloc), fmtBytes(a.alloc), (a.alloc-b.alloc)/float64(m.n), fmtBytes(d.alloc))
			}
			row("memprovider", m.before, m.fresh, m.after, m.dropped)
			row("plain map[string]*entry: insert every key, then delete every key", m.mapBefore, m.mapBefore, m.mapAfter, m.mapDrop)
		}
		p("")
		p("Keys held afterwards (memprovider.Len): %d.", m.held)
		p("")
		if m.err == nil && m.burst > 0 {
			p("Burst: %d keys held at once, then all released, no new key locked afterwards: HeapInuse %s before, %s held (%.0f B/key), **%s after release** (%.0f B/key still retained).",
				m.burst, fmtBytes(m.burstBefore.inuse), fmtBytes(m.burstHeld.inuse), (m.burstHeld.inuse-m.burstBefore.inuse)/float64(m.burst),
				fmtBytes(m.burstAfter.inuse), m.burstRetainedPerKey())
			p("")
		}
	}
}

// fmtBytes formats a byte count in MB (10^6) with three significant digits.
func fmtBytes(v float64) string {
	if math.Abs(v) >= 1e6 {
		return fmt.Sprintf("%.3g MB", v/1e6)
	}
	return fmt.Sprintf("%.3g kB", v/1e3)
}

// slotCounters is what the ever-locked keys "e0".."e<n-1>" leave for good:
// the fence counters of their hash slots (at most 16384; the other keys
// left, release markers, lapse after the client's re-send window), as
// their total MEMORY USAGE ÷ n.
func slotCounters(ctx context.Context, c *redis.Client, p *redisprovider.Provider, n int) *memFigure {
	f := &memFigure{id: "ever_lockproof_counters", name: "lockproof: the slot fence counters those keys left (kept)", unit: "key", n: n, bytes: nan}
	seen := make(map[string]bool)
	pipe := c.Pipeline()
	var cmds []*redis.IntCmd
	for i := range n {
		k := p.FenceCounter("e" + strconv.Itoa(i))
		if !seen[k] {
			seen[k] = true
			cmds = append(cmds, pipe.MemoryUsage(ctx, k, 0))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		f.err = fmt.Errorf("MEMORY USAGE of the counters: %w", err)
		return f
	}
	total := 0.0
	for _, cmd := range cmds {
		total += float64(cmd.Val())
	}
	f.usage, f.keysLeft = total/float64(n), int64(len(cmds))
	f.note = fmt.Sprintf("%d counters, %s in all; bounded by 16384 slots however many keys are locked", len(cmds), fmtBytes(total))
	return f
}

// lockKey is the Redis key of key's lock: the provider publishes only the
// keys beside it (DataKey(key, name) is the lock key + ":" + name), which
// is enough for a measurement that reads the lock's own size.
func lockKey(p *redisprovider.Provider, key string) string {
	return strings.TrimSuffix(p.DataKey(key, ""), ":")
}
