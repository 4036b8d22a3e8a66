package main

// Server-side script cost (section 8): INFO commandstats usec_per_call of
// each script, on a redis-server of its own, reset before every phase so
// that one phase's calls are the only ones counted:
//
//   - the library's acquire and release (through redisprovider), and
//     Redlock's (a one-node Redlock: what each node runs), next to
//     bsm/redislock's obtain and release and the raw SET NX PX and DEL
//     (go-redsync runs SET NX PX and the same GET ==, DEL script as
//     redislock's release);
//   - variants of the acquire and release scripts (scripts/*.lua, for
//     measurement only: the library's scripts are not changed here), sent
//     by EVALSHA directly in pipelines, to see where the time goes.

import (
	"context"
	"embed"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/bsm/redislock"
	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/redisprovider"
)

//go:embed scripts/*.lua
var variantFS embed.FS

// scriptRow is one measured script (or command) phase.
type scriptRow struct {
	group, id, name string
	command         string // the commandstats name read
	calls           int64
	usec            float64 // usec_per_call; with rounds, their median
	rounds          []float64
	err             error
}

func (r *results) script(id string) *scriptRow {
	for _, s := range r.scripts {
		if s.id == id && s.err == nil && s.calls > 0 {
			return s
		}
	}
	return nil
}

func (r *results) scriptUsec(ids ...string) float64 {
	total := 0.0
	for _, id := range ids {
		s := r.script(id)
		if s == nil {
			return nan
		}
		total += s.usec
	}
	return total
}

// statPhase resets the server's command statistics, runs phase and
// returns command's calls and usec_per_call.
func statPhase(ctx context.Context, c *redis.Client, command string, phase func() error) (int64, float64, error) {
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		return 0, 0, err
	}
	if err := phase(); err != nil {
		return 0, 0, err
	}
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0, 0, err
	}
	stats, err := commandStats(info)
	if err != nil {
		return 0, 0, err
	}
	st := stats[command]
	if st.calls == 0 {
		return 0, 0, fmt.Errorf("no %s calls counted", command)
	}
	return st.calls, st.usecPerCall, nil
}

// runScripts measures on the server behind c (its own node, flushed), n
// calls per phase, every phase once a round; each row has the median of
// its rounds (a shared machine drifts between phases).
func runScripts(ctx context.Context, c *redis.Client, n, rounds int, logf func(string, ...any)) []*scriptRow {
	var out []*scriptRow
	for r := range rounds {
		rows := scriptRound(ctx, c, n)
		var line []string
		for i, row := range rows {
			if r == 0 {
				out = append(out, row)
				row.rounds = []float64{row.usec}
				continue
			}
			if i >= len(out) || out[i].id != row.id {
				continue // a failed set-up: the rows do not line up
			}
			o := out[i]
			o.err = cmpErr(o.err, row.err)
			o.calls += row.calls
			o.rounds = append(o.rounds, row.usec)
		}
		for _, row := range rows {
			if row.err != nil {
				logf("script %d/%d %-22s FAILED: %v", r+1, rounds, row.id, row.err)
			} else {
				line = append(line, fmt.Sprintf("%s %.2f", row.id, row.usec))
			}
		}
		logf("script %d/%d µs/call: %s", r+1, rounds, strings.Join(line, ", "))
	}
	for _, o := range out {
		if o.err == nil {
			o.usec = median(o.rounds)
		}
	}
	return out
}

// scriptRound measures every phase once.
func scriptRound(ctx context.Context, c *redis.Client, n int) []*scriptRow {
	var rows []*scriptRow
	add := func(group, id, name, command string, phase func() error) {
		row := &scriptRow{group: group, id: id, name: name, command: command}
		row.calls, row.usec, row.err = statPhase(ctx, c, command, phase)
		rows = append(rows, row)
	}
	if err := c.FlushAll(ctx).Err(); err != nil {
		return []*scriptRow{{id: "setup", err: err}}
	}
	p, err := redisprovider.New(c, &redisprovider.Options{Prefix: "bench:sc:"})
	if err != nil {
		return []*scriptRow{{id: "setup", err: err}}
	}
	defer p.Close()
	keys := tputKeyNames("k", n)
	tok := func(i int) string { return "t" + strconv.Itoa(i) }

	// Every key locked once first, so that its fence counter exists, as it
	// does for every key locked before (the steady state).
	for i, k := range keys {
		if _, err := p.TryAcquire(ctx, k, tok(i), ttl); err != nil {
			return []*scriptRow{{id: "setup", err: err}}
		}
		if err := p.Release(ctx, k, tok(i)); err != nil {
			return []*scriptRow{{id: "setup", err: err}}
		}
	}
	const lib = "library and peers (through their Go APIs)"
	add(lib, "lockproof_acquire", "lockproof acquire.lua (TryAcquire, free key with a fence counter)", "evalsha", func() error {
		for i, k := range keys {
			if _, err := p.TryAcquire(ctx, k, tok(i), ttl); err != nil {
				return err
			}
		}
		return nil
	})
	add(lib, "lockproof_release", "lockproof release.lua (Release, nobody waiting)", "evalsha", func() error {
		for i, k := range keys {
			if err := p.Release(ctx, k, tok(i)); err != nil {
				return err
			}
		}
		return nil
	})
	// Redlock's vote and release on this one node (a one-node Redlock: its
	// quorum is the node), as each of its nodes runs them.
	rlp, err := redisprovider.NewRedlock([]redis.UniversalClient{c}, &redisprovider.RedlockOptions{Options: redisprovider.Options{Prefix: "bench:rl:"}})
	if err != nil {
		return []*scriptRow{{id: "setup", err: err}}
	}
	defer rlp.Close()
	for i, k := range keys { // admits the node, and every key's fence counter exists
		if _, err := rlp.TryAcquire(ctx, k, tok(i), ttl); err != nil {
			return []*scriptRow{{id: "setup", err: err}}
		}
		if err := rlp.Release(ctx, k, tok(i)); err != nil {
			return []*scriptRow{{id: "setup", err: err}}
		}
	}
	add(lib, "redlock_acquire", "lockproof redlock_acquire.lua (Redlock TryAcquire on one node: one vote per round trip, through the node worker)", "evalsha", func() error {
		for i, k := range keys {
			if _, err := rlp.TryAcquire(ctx, k, tok(i), ttl); err != nil {
				return err
			}
		}
		return nil
	})
	add(lib, "redlock_release", "lockproof redlock_release.lua (Redlock Release on one node, nobody waiting, through the node worker)", "evalsha", func() error {
		for i, k := range keys {
			if err := rlp.Release(ctx, k, tok(i)); err != nil {
				return err
			}
		}
		return nil
	})
	rl := redislock.New(c)
	locks := make([]*redislock.Lock, n)
	add(lib, "redislock_obtain", "bsm/redislock obtain script (Obtain)", "evalsha", func() error {
		for i := range keys {
			l, err := rl.Obtain(ctx, "bench:sc:r:"+keys[i], ttl, nil)
			if err != nil {
				return err
			}
			locks[i] = l
		}
		return nil
	})
	add(lib, "redislock_release", "bsm/redislock release script (Release)", "evalsha", func() error {
		for _, l := range locks {
			if err := l.Release(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	add(lib, "floor_set", "raw SET NX PX", "set", func() error {
		for i := range keys {
			if err := c.SetNX(ctx, "bench:sc:f:"+keys[i], tok(i), ttl).Err(); err != nil {
				return err
			}
		}
		return nil
	})
	add(lib, "floor_del", "raw DEL", "del", func() error {
		for i := range keys {
			if err := c.Del(ctx, "bench:sc:f:"+keys[i]).Err(); err != nil {
				return err
			}
		}
		return nil
	})

	// The variants, by EVALSHA in pipelines of 64 (fewer round trips, the
	// same server work per call).
	const variants = "variants (scripts/*.lua, EVALSHA in pipelines)"
	vkeys := func(i int) []string {
		lock := "bench:sc:v:{" + keys[i] + "}"
		return []string{lock, lock + ":fence", lock + ":queue", lock + ":gone:" + tok(i)}
	}
	pipelined := func(each func(pipe redis.Pipeliner, i int)) error {
		for lo := 0; lo < n; lo += 64 {
			pipe := c.Pipeline()
			for i := lo; i < min(lo+64, n); i++ {
				each(pipe, i)
			}
			cmds, err := pipe.Exec(ctx)
			if err != nil {
				return err
			}
			for _, cmd := range cmds {
				if err := cmd.Err(); err != nil && err != redis.Nil {
					return err
				}
			}
		}
		return nil
	}
	sequential := func(each func(pipe redis.Pipeliner, i int)) error {
		for i := range n {
			pipe := c.Pipeline()
			each(pipe, i)
			if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
				return err
			}
		}
		return nil
	}
	for _, v := range []struct {
		file, name string
		oneByOne   bool // one EVALSHA per round trip, as the library sends it
		libArgs    bool // the 5 keys and 5 arguments acquire.lua took before decision 53 (the script reads 4 and 2)
	}{
		{"acquire_empty", "EVALSHA of `return 1` (the floor of any script)", false, false},
		{"acquire_empty", "EVALSHA of `return 1`, one per round trip", true, false},
		{"acquire_setnx", "SET NX PX in a script (redislock's fast path)", false, false},
		{"acquire_fast", "acquire.lua's fast path before decision 53: EXISTS ×3, INCR, SET", false, false},
		{"acquire_fast", "the same (before decision 53), one per round trip", true, false},
		{"acquire_fast", "the same, with the 5 keys and 5 arguments acquire.lua took before decision 53", true, true},
		{"acquire_fast_2exists", "EXISTS on 2 keys, INCR, SET: the shape of acquire.lua's fast path since decision 53", false, false},
		{"acquire_fast_setnx", "SET NX PX, then INCR + SET KEEPTTL (one existence check)", false, false},
		{"acquire_fast_noincr", "fast path without the fence (no INCR)", false, false},
		{"acquire_fast_time", "fast path plus TIME", false, false},
	} {
		id := v.file
		if v.oneByOne {
			id += "_rtt"
		}
		if v.libArgs {
			id += "_libargs"
		}
		src, err := variantFS.ReadFile("scripts/" + v.file + ".lua")
		if err != nil {
			rows = append(rows, &scriptRow{group: variants, id: id, name: v.name, err: err})
			continue
		}
		s := redis.NewScript(string(src))
		if err := s.Load(ctx, c).Err(); err != nil {
			rows = append(rows, &scriptRow{group: variants, id: id, name: v.name, err: err})
			continue
		}
		for i := range keys { // the fence counters exist, as in the steady state
			c.Set(ctx, vkeys(i)[1], "1", 0)
		}
		send := pipelined
		if v.oneByOne {
			send = sequential
		}
		add(variants, id, v.name, "evalsha", func() error {
			return send(func(pipe redis.Pipeliner, i int) {
				k := vkeys(i)
				if v.libArgs {
					s.EvalSha(ctx, pipe, []string{k[0], k[1], k[2], k[0] + ":alive", k[3]}, tok(i), ttl.Milliseconds(), 0, 300, 1)
				} else {
					s.EvalSha(ctx, pipe, k, tok(i), ttl.Milliseconds())
				}
				pipe.Del(ctx, k[0])
			})
		})
	}
	for _, v := range []struct{ file, name, value string }{
		{"release_lib", "copy of release.lua: GET, parse, DEL, LINDEX", "7 "},
		{"release_noqueue", "release.lua without LINDEX", "7 "},
		{"release_plain", "redislock's release: GET ==, DEL", ""},
	} {
		src, err := variantFS.ReadFile("scripts/" + v.file + ".lua")
		if err != nil {
			rows = append(rows, &scriptRow{group: variants, id: v.file, name: v.name, err: err})
			continue
		}
		s := redis.NewScript(string(src))
		if err := s.Load(ctx, c).Err(); err != nil {
			rows = append(rows, &scriptRow{group: variants, id: v.file, name: v.name, err: err})
			continue
		}
		add(variants, v.file, v.name, "evalsha", func() error {
			return pipelined(func(pipe redis.Pipeliner, i int) {
				k := vkeys(i)
				pipe.Set(ctx, k[0], v.value+tok(i), ttl)
				s.EvalSha(ctx, pipe, []string{k[0], k[2]}, tok(i))
			})
		})
	}
	return rows
}

// scriptMarkdown renders the script table.
func (r *results) scriptMarkdown(b *strings.Builder) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	floor := r.scriptUsec("acquire_empty")
	p("| group | script / command | calls | µs per call (commandstats) | − empty script | rounds |")
	p("|---|---|--:|--:|--:|---|")
	for _, s := range r.scripts {
		if s.err != nil {
			p("| %s | %s | failed: %s | | | |", s.group, s.name, mdEscape(s.err.Error()))
			continue
		}
		over := "–"
		if strings.HasPrefix(s.command, "eval") && !math.IsNaN(floor) {
			over = fmt.Sprintf("%+.2f", s.usec-floor)
		}
		var rounds []string
		for _, u := range s.rounds {
			rounds = append(rounds, fmt.Sprintf("%.2f", u))
		}
		p("| %s | %s | %d | **%.2f** | %s | %s |", s.group, s.name, s.calls, s.usec, over, strings.Join(rounds, " / "))
	}
	p("")
}

// elapsedSince is time.Since, for progress lines.
func elapsedSince(t time.Time) string { return time.Since(t).Round(100 * time.Millisecond).String() }
