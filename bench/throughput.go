package main

// Throughput at scale (section 6): lock operations per second over 10,000
// keys with 1, 4, 16 and 64 concurrent clients, on one redis-server and on
// a local 3-master Cluster, next to bsm/redislock and the raw SET NX PX +
// DEL floor. Each client works through its own share of the keys in turn,
// so no two clients contend: this measures cost, not fairness. Contenders
// of one concurrency level run back to back in every round (in rotating
// order) and the ratios are medians of same-round ratios.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bsm/redislock"
	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/redisprovider"
)

// tputKeys is the number of distinct keys the throughput section spreads
// its operations over.
const tputKeys = 10_000

// tputClients are the concurrency levels of the throughput section.
var tputClients = []int{1, 4, 16, 64}

// tputRow is one contender at one concurrency level on one topology.
type tputRow struct {
	topology string // "1 node" or "cluster"
	id, name string
	clients  int
	rounds   []float64 // pairs per second, per round
	cpuPerOp float64   // Redis CPU (user+sys, all nodes) per pair, ns; from the median round
	cmdsOp   float64
	med      float64 // pairs per second, median round
	err      error
}

// tputCase is one throughput contender: op locks and releases key.
type tputCase struct {
	id, name string
	op       func(ctx context.Context, key string) error
}

// throughput runs clients goroutines for d; goroutine g locks and releases
// keys[g], keys[g+clients], ... in turn. It returns the pairs completed per
// second. The first error stops every goroutine and is returned.
func throughput(ctx context.Context, clients int, keys []string, d time.Duration, op func(context.Context, string) error) (float64, error) {
	if clients < 1 || len(keys) < clients {
		return 0, fmt.Errorf("throughput: need 1 ≤ clients ≤ %d keys, got %d", len(keys), clients)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		total atomic.Int64
		wg    sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for g := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := int64(0)
			for i := g; ctx.Err() == nil; i += clients {
				if i >= len(keys) {
					i = g
				}
				if err := op(ctx, keys[i]); err != nil {
					cancel(fmt.Errorf("client %d, %s: %w", g, keys[i], err))
					break
				}
				n++
				if n%8 == 0 && time.Now().After(deadline) {
					break
				}
			}
			total.Add(n)
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return 0, err
	}
	return float64(total.Load()) / el.Seconds(), nil
}

// tputKeyNames returns n key names with the given prefix.
func tputKeyNames(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = prefix + strconv.Itoa(i)
	}
	return keys
}

// tputCases returns the contenders on one topology behind c.
func tputCases(c redis.UniversalClient, p *redisprovider.Provider, svc *locked.Service) []tputCase {
	rl := redislock.New(c)
	var seq atomic.Uint64
	return []tputCase{
		{"floor", "raw SET NX PX + DEL", func(ctx context.Context, key string) error {
			ok, err := c.SetNX(ctx, key, "t"+strconv.FormatUint(seq.Add(1), 10), ttl).Result()
			if err == nil && !ok {
				err = errors.New("key was held")
			}
			if err != nil {
				return err
			}
			return c.Del(ctx, key).Err()
		}},
		{"lockproof", "lockproof redisprovider TryAcquire + Release", func(ctx context.Context, key string) error {
			tok := "t" + strconv.FormatUint(seq.Add(1), 10)
			if _, err := p.TryAcquire(ctx, key, tok, ttl); err != nil {
				return err
			}
			return p.Release(ctx, key, tok)
		}},
		{"service", "lockproof locked.Service TryAcquire + Release", func(ctx context.Context, key string) error {
			l, err := svc.TryAcquire(ctx, key)
			if err != nil {
				return err
			}
			return l.Release(ctx)
		}},
		{"redislock", "bsm/redislock Obtain + Release", func(ctx context.Context, key string) error {
			l, err := rl.Obtain(ctx, key, ttl, nil)
			if err != nil {
				return err
			}
			return l.Release(ctx)
		}},
	}
}

// tputTopology is one place to measure: a client for it and the clients of
// its nodes (for INFO cpu).
type tputTopology struct {
	name  string
	c     redis.UniversalClient
	nodes []*redis.Client
}

// runThroughput measures every contender of every topology at every level.
func runThroughput(ctx context.Context, cfg config, tops []tputTopology, logf func(string, ...any)) []*tputRow {
	var rows []*tputRow
	for _, top := range tops {
		p, err := redisprovider.New(top.c, &redisprovider.Options{Prefix: "bench:tp:"})
		if err != nil {
			rows = append(rows, &tputRow{topology: top.name, id: "setup", err: err})
			continue
		}
		svc, err := locked.New(p, &locked.Options{TTL: ttl, Timeout: time.Minute})
		if err != nil {
			p.Close()
			rows = append(rows, &tputRow{topology: top.name, id: "setup", err: err})
			continue
		}
		cases := tputCases(top.c, p, svc)
		for _, n := range cfg.tputClients {
			level := make([]*tputRow, len(cases))
			for i, c := range cases {
				level[i] = &tputRow{topology: top.name, id: c.id, name: c.name, clients: n}
			}
			var cpus, cmds [][]float64 = make([][]float64, len(cases)), make([][]float64, len(cases))
			for r := range cfg.tputRounds {
				for k := range cases {
					i := (k + r) % len(cases)
					row := level[i]
					if row.err != nil {
						continue
					}
					keys := tputKeyNames("bench:t:"+cases[i].id+":", tputKeys)
					cpu0, err := cpuTime(ctx, top.nodes)
					cmds0 := sentCommands.Load()
					var ops float64
					if err == nil {
						ops, err = throughput(ctx, n, keys, cfg.tputTime, cases[i].op)
					}
					cmds1 := sentCommands.Load()
					var cpu1 time.Duration
					if err == nil {
						cpu1, err = cpuTime(ctx, top.nodes)
					}
					if err != nil {
						row.err = err
						logf("throughput %s %s c=%d FAILED: %v", top.name, row.id, n, err)
						continue
					}
					pairs := ops * cfg.tputTime.Seconds()
					row.rounds = append(row.rounds, ops)
					cpus[i] = append(cpus[i], float64(cpu1-cpu0)/pairs)
					cmds[i] = append(cmds[i], float64(cmds1-cmds0)/pairs)
				}
			}
			var line string
			for i, row := range level {
				if row.err == nil && len(row.rounds) > 0 {
					row.med = median(row.rounds)
					row.cpuPerOp = median(cpus[i])
					row.cmdsOp = median(cmds[i])
					line += fmt.Sprintf(" %s %.0f/s", row.id, row.med)
				}
			}
			logf("throughput %s c=%d:%s", top.name, n, line)
			rows = append(rows, level...)
		}
		svc.Close()
		p.Close()
	}
	return rows
}

// tputRatio returns the median over rounds of a's throughput ÷ b's in the
// same round, at clients on topology (NaN if either is missing).
func (r *results) tputRatio(topA, a, topB, b string, clients int) float64 {
	ra, rb := r.tput(topA, a, clients), r.tput(topB, b, clients)
	if ra == nil || rb == nil {
		return nan
	}
	if topA != topB { // different topologies are not interleaved: medians
		return ra.med / rb.med
	}
	return pairedMedian(ra.rounds, rb.rounds)
}

func (r *results) tput(topology, id string, clients int) *tputRow {
	for _, row := range r.throughput {
		if row.topology == topology && row.id == id && row.clients == clients && row.err == nil && len(row.rounds) > 0 {
			return row
		}
	}
	return nil
}

// tputMarkdown renders the throughput table: one row per topology and
// contender, one column per concurrency level.
func (r *results) tputMarkdown(b *strings.Builder) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	levels := r.cfg.tputClients
	head := "| topology | contender |"
	sep := "|---|---|"
	for _, n := range levels {
		head += fmt.Sprintf(" %d clients |", n)
		sep += "--:|"
	}
	p("%s Redis CPU/pair (at %d) | cmds/pair |", head, levels[len(levels)-1])
	p("%s--:|--:|", sep)
	type rowKey struct{ top, id string }
	var order []rowKey
	seen := map[rowKey]bool{}
	for _, row := range r.throughput {
		k := rowKey{row.topology, row.id}
		if !seen[k] {
			seen[k] = true
			order = append(order, k)
		}
	}
	for _, k := range order {
		var name string
		line := ""
		var last *tputRow
		for _, n := range levels {
			var row *tputRow
			for _, x := range r.throughput {
				if x.topology == k.top && x.id == k.id && x.clients == n {
					row = x
				}
			}
			switch {
			case row == nil:
				line += " – |"
			case row.err != nil:
				name = row.name
				line += " failed: " + mdEscape(row.err.Error()) + " |"
			default:
				name = row.name
				rel := ""
				if k.id != "redislock" {
					if v := r.tputRatio(k.top, k.id, k.top, "redislock", n); !math.IsNaN(v) {
						rel = fmt.Sprintf(" (%.2f×)", v)
					}
				}
				line += fmt.Sprintf(" **%s/s**%s |", fmtCount(row.med), rel)
				last = row
			}
		}
		cpu, cmds := "–", "–"
		if last != nil {
			cpu, cmds = fmtNs(last.cpuPerOp), fmt.Sprintf("%.1f", last.cmdsOp)
		}
		p("| %s | %s |%s %s | %s |", k.top, cmp.Or(name, k.id), line, cpu, cmds)
	}
	p("")
}

// fmtCount formats a rate with three significant digits and a k suffix.
func fmtCount(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.3gk", v/1000)
	}
	return fmt.Sprintf("%.3g", v)
}
