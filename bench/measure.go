package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// opStats is one timed loop of an uncontended operation.
type opStats struct {
	nsPerOp     float64
	allocsPerOp float64
	cmdsPerOp   float64 // Redis commands sent per op, by all clients
	serverPerOp float64 // time Redis spent executing the op's commands, per op, ns
	ops         int
}

// timeOp runs op in batches, doubling the batch until one takes a tenth of
// d, and stops once d has passed; it reports the mean time per op. A short
// warm-up (scripts loaded, connections dialled) comes first and is not
// counted. It stops at op's first error. serverTime, if not nil, reports
// the time the redis-servers have spent so far executing op's commands.
func timeOp(ctx context.Context, d time.Duration, op func(context.Context) error, serverTime func(context.Context) (time.Duration, error)) (opStats, error) {
	if serverTime == nil {
		serverTime = func(context.Context) (time.Duration, error) { return 0, nil }
	}
	for range 20 {
		if err := op(ctx); err != nil {
			return opStats{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	runtime.GC()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0, err := serverTime(ctx)
	if err != nil {
		return opStats{}, err
	}
	cmds0 := sentCommands.Load()
	var (
		total time.Duration
		ops   int
		n     = 1
	)
	for total < d {
		if err := ctx.Err(); err != nil {
			return opStats{}, err
		}
		start := time.Now()
		for range n {
			if err := op(ctx); err != nil {
				return opStats{}, err
			}
		}
		el := time.Since(start)
		total += el
		ops += n
		if el < d/10 && n < 1<<30 {
			n *= 2
		}
	}
	cmds1 := sentCommands.Load()
	runtime.ReadMemStats(&ms1)
	cpu1, err := serverTime(ctx)
	if err != nil {
		return opStats{}, err
	}
	return opStats{
		serverPerOp: float64(cpu1-cpu0) / float64(ops),
		nsPerOp:     float64(total.Nanoseconds()) / float64(ops),
		allocsPerOp: float64(ms1.Mallocs-ms0.Mallocs) / float64(ops),
		cmdsPerOp:   float64(cmds1-cmds0) / float64(ops),
		ops:         ops,
	}, nil
}

// timeInterleaved times ops against each other: it runs blocks[i] calls of
// ops[i], for each i in turn (rotating the order every cycle), until every
// op has run for at least d, and returns each op's mean time per call.
// Blocks of a millisecond or two interleave the contenders so finely that
// the drift of a noisy machine hits them all alike. On an op's error it
// returns that op's index.
func timeInterleaved(ctx context.Context, d time.Duration, ops []func(context.Context) error, blocks []int) ([]float64, int, error) {
	n := len(ops)
	total := make([]time.Duration, n)
	count := make([]int, n)
	for cycle := 0; ; cycle++ {
		if err := ctx.Err(); err != nil {
			return nil, -1, err
		}
		for k := range n {
			i := (k + cycle) % n
			start := time.Now()
			for range blocks[i] {
				if err := ops[i](ctx); err != nil {
					return nil, i, err
				}
			}
			total[i] += time.Since(start)
			count[i] += blocks[i]
		}
		if slices.Min(total) >= d {
			break
		}
	}
	ns := make([]float64, n)
	for i := range n {
		ns[i] = float64(total[i].Nanoseconds()) / float64(count[i])
	}
	return ns, -1, nil
}

// blockFor returns how many calls of an op with st's cost fill about 2 ms.
func blockFor(st opStats) int {
	return max(1, int(2e6/st.nsPerOp))
}

// lockFunc takes the contended lock for worker w and returns the function
// that releases it. It blocks (by whatever means the contender waits) until
// it holds the lock, or fails.
type lockFunc func(ctx context.Context, w int) (unlock func() error, err error)

// handoffStats is one contended run: W workers × R turns on one lock, each
// holding it for H.
type handoffStats struct {
	wall        time.Duration
	util        float64 // W·R·H / wall
	p50, p99    time.Duration
	max         time.Duration
	gap         time.Duration // mean idle time per turn: (wall − Σ actual holds) / (W·R)
	barged      float64       // share of turns re-taken by the releaser while others waited
	cmdsPerTurn float64       // Redis commands sent per turn, by all clients
	violations  int64         // turns that found another holder inside (must be 0)
}

// handoff runs the contended scenario: all workers start at once; each turn
// measures the wait from the call to lock until it returns, then holds for
// hold (time.Sleep: the simulated work) and unlocks. The first error stops
// every worker.
func handoff(ctx context.Context, workers, turns int, hold time.Duration, lock lockFunc) (handoffStats, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		holders    atomic.Int64
		violations atomic.Int64
		waiting    atomic.Int64 // workers inside lock
		last       atomic.Int64 // the worker that took the lock last
		barged     atomic.Int64
		held       atomic.Int64 // Σ actual hold time, ns
		waits      = make([][]time.Duration, workers)
		wg         sync.WaitGroup
		start      = make(chan struct{})
	)
	last.Store(-1)
	for w := range workers {
		waits[w] = make([]time.Duration, 0, turns)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for range turns {
				if ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				waiting.Add(1)
				unlock, err := lock(ctx, w)
				others := waiting.Add(-1)
				if err != nil {
					cancel(fmt.Errorf("worker %d: lock: %w", w, err))
					return
				}
				t1 := time.Now()
				waits[w] = append(waits[w], t1.Sub(t0))
				if holders.Add(1) > 1 {
					violations.Add(1)
				}
				if last.Swap(int64(w)) == int64(w) && others > 0 {
					barged.Add(1)
				}
				time.Sleep(hold)
				held.Add(int64(time.Since(t1)))
				holders.Add(-1)
				if err := unlock(); err != nil {
					cancel(fmt.Errorf("worker %d: unlock: %w", w, err))
					return
				}
			}
		}()
	}
	cmds0 := sentCommands.Load()
	t0 := time.Now()
	close(start)
	wg.Wait()
	wall := time.Since(t0)
	cmds1 := sentCommands.Load()
	if err := context.Cause(ctx); err != nil {
		return handoffStats{}, err
	}
	all := slices.Concat(waits...)
	if len(all) != workers*turns {
		return handoffStats{}, errors.New("handoff: missing turns")
	}
	slices.Sort(all)
	n := workers * turns
	return handoffStats{
		wall:        wall,
		util:        float64(time.Duration(n)*hold) / float64(wall),
		p50:         quantile(all, 0.50),
		p99:         quantile(all, 0.99),
		max:         all[len(all)-1],
		gap:         (wall - time.Duration(held.Load())) / time.Duration(n),
		barged:      float64(barged.Load()) / float64(n),
		cmdsPerTurn: float64(cmds1-cmds0) / float64(n),
		violations:  violations.Load(),
	}, nil
}

// quantile returns the q-quantile of sorted (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// median returns the median of xs (the lower middle for an even count).
// pairedMedian is the median over rounds of a[i] ÷ b[i], the two measured
// in the same round (NaN if there is no common round): contenders of a
// round run back to back, so the paired ratio cancels most of the drift of
// a noisy machine.
func pairedMedian(a, b []float64) float64 {
	n := min(len(a), len(b))
	if n == 0 {
		return math.NaN()
	}
	xs := make([]float64, n)
	for i := range n {
		xs[i] = a[i] / b[i]
	}
	return median(xs)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// sentCommands counts the commands every Redis client of the run sends
// (see countCommands); measurements read it before and after.
var sentCommands atomic.Int64

// commandCounter is a go-redis hook that counts commands into sentCommands.
type commandCounter struct{}

func (commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		sentCommands.Add(1)
		return next(ctx, cmd)
	}
}

func (commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		sentCommands.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}
