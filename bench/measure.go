package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// opStats is one timed loop of an uncontended operation.
type opStats struct {
	nsPerOp     float64
	allocsPerOp float64
	ops         int
}

// timeOp runs op in batches, doubling the batch until one takes a tenth of
// d, and stops once d has passed; it reports the mean time per op. A short
// warm-up (scripts loaded, connections dialled) comes first and is not
// counted. It stops at op's first error.
func timeOp(ctx context.Context, d time.Duration, op func(context.Context) error) (opStats, error) {
	for range 20 {
		if err := op(ctx); err != nil {
			return opStats{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	runtime.GC()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
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
	runtime.ReadMemStats(&ms1)
	return opStats{
		nsPerOp:     float64(total.Nanoseconds()) / float64(ops),
		allocsPerOp: float64(ms1.Mallocs-ms0.Mallocs) / float64(ops),
		ops:         ops,
	}, nil
}

// lockFunc takes the contended lock for worker w and returns the function
// that releases it. It blocks (by whatever means the contender waits) until
// it holds the lock, or fails.
type lockFunc func(ctx context.Context, w int) (unlock func() error, err error)

// handoffStats is one contended run: W workers × R turns on one lock, each
// holding it for H.
type handoffStats struct {
	wall       time.Duration
	util       float64 // W·R·H / wall
	p50, p99   time.Duration
	max        time.Duration
	violations int64 // turns that found another holder inside (must be 0)
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
		waits      = make([][]time.Duration, workers)
		wg         sync.WaitGroup
		start      = make(chan struct{})
	)
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
				unlock, err := lock(ctx, w)
				if err != nil {
					cancel(fmt.Errorf("worker %d: lock: %w", w, err))
					return
				}
				waits[w] = append(waits[w], time.Since(t0))
				if holders.Add(1) > 1 {
					violations.Add(1)
				}
				time.Sleep(hold)
				holders.Add(-1)
				if err := unlock(); err != nil {
					cancel(fmt.Errorf("worker %d: unlock: %w", w, err))
					return
				}
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	wall := time.Since(t0)
	if err := context.Cause(ctx); err != nil {
		return handoffStats{}, err
	}
	all := slices.Concat(waits...)
	if len(all) != workers*turns {
		return handoffStats{}, errors.New("handoff: missing turns")
	}
	slices.Sort(all)
	return handoffStats{
		wall:       wall,
		util:       float64(time.Duration(workers*turns)*hold) / float64(wall),
		p50:        quantile(all, 0.50),
		p99:        quantile(all, 0.99),
		max:        all[len(all)-1],
		violations: violations.Load(),
	}, nil
}

// quantile returns the q-quantile of sorted (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// median returns the median of xs (the lower middle for an even count).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}
