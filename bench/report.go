package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

// machineInfo describes where a run happened, for the results table.
type machineInfo struct {
	date      string
	cpus      int
	cpuModel  string
	goVersion string
	platform  string
	kernel    string
	redis     string
	deps      []string // "module version" of the peers and go-redis
}

func readMachine(redisBin string) machineInfo {
	m := machineInfo{
		date:      time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		cpus:      runtime.NumCPU(),
		cpuModel:  "unknown",
		goVersion: runtime.Version(),
		platform:  runtime.GOOS + "/" + runtime.GOARCH,
		redis:     redisVersion(redisBin),
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpuModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if out, err := exec.Command("uname", "-sr").Output(); err == nil {
		m.kernel = strings.TrimSpace(string(out))
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			switch d.Path {
			case "github.com/bsm/redislock", "github.com/go-redsync/redsync/v4", "github.com/redis/go-redis/v9":
				m.deps = append(m.deps, d.Path+" "+d.Version)
			}
		}
	}
	return m
}

// ratio is one headline number, printed as "RATIO name=value".
type ratio struct {
	name  string
	value float64
	what  string
}

func (r *results) ratios() []ratio {
	ns := r.paired
	util := func(id string) float64 {
		if h := r.handoff(id); h != nil && h.err == nil && len(h.rounds) > 0 {
			return h.med.util
		}
		return math.NaN()
	}
	fair := float64(time.Duration(r.cfg.workers) * r.cfg.hold)
	waitVsFair := func(id string, p99 bool) float64 {
		if h := r.handoff(id); h != nil && h.err == nil && len(h.rounds) > 0 {
			if p99 {
				return float64(h.med.p99) / fair
			}
			return float64(h.med.max) / fair
		}
		return math.NaN()
	}
	rs := []ratio{
		{"redis_uncontended_vs_floor", ns("redis_lockproof", "redis_floor"), "lockproof redisprovider acquire+release ÷ raw SET NX PX + DEL"},
		{"redis_uncontended_vs_redislock", ns("redis_lockproof", "redis_redislock"), "lockproof ÷ bsm/redislock, uncontended"},
		{"redis_uncontended_vs_redsync", ns("redis_lockproof", "redis_redsync"), "lockproof ÷ go-redsync (1 pool), uncontended"},
		{"redis_service_vs_floor", ns("redis_lockproof_service", "redis_floor"), "locked.Service + Lease on Redis ÷ raw floor"},
		{"handoff_util_lockproof", util("lockproof"), "W·R·H ÷ wall, lockproof (one Service)"},
		{"handoff_util_lockproof_procs", util("lockproof_procs"), "W·R·H ÷ wall, lockproof (client+Service per worker)"},
		{"handoff_util_redislock_default", util("redislock_default"), "W·R·H ÷ wall, redislock LinearBackoff(100ms)"},
		{"handoff_util_redislock_1ms", util("redislock_1ms"), "W·R·H ÷ wall, redislock LinearBackoff(1ms)"},
		{"handoff_util_redsync_default", util("redsync_default"), "W·R·H ÷ wall, redsync defaults"},
		{"handoff_util_redsync_1ms", util("redsync_1ms"), "W·R·H ÷ wall, redsync 1 ms retry delay"},
		{"handoff_util_memprovider", util("memprovider"), "W·R·H ÷ wall, memprovider"},
		{"handoff_util_syncmutex", util("syncmutex"), "W·R·H ÷ wall, sync.Mutex (the ceiling of this harness)"},
		{"handoff_maxwait_vs_fair", waitVsFair("lockproof", false), "lockproof max wait ÷ (W·H)"},
		{"handoff_maxwait_vs_fair_procs", waitVsFair("lockproof_procs", false), "lockproof (per worker) max wait ÷ (W·H)"},
		{"handoff_p99wait_vs_fair", waitVsFair("lockproof", true), "lockproof p99 wait ÷ (W·H)"},
		{"handoff_maxwait_vs_fair_memprovider", waitVsFair("memprovider", false), "memprovider max wait ÷ (W·H)"},
		{"mem_uncontended_vs_syncmutex", ns("mem_memprovider", "mem_syncmutex"), "memprovider TryAcquire+Release ÷ sync.Mutex Lock+Unlock"},
		{"redlock3_vs_redsync3", ns("redlock3_lockproof", "redlock3_redsync"), "lockproof Redlock (3 nodes) ÷ redsync (3 pools)"},
		{"redlock3_vs_floor3", ns("redlock3_lockproof", "redlock3_floor"), "lockproof Redlock ÷ parallel SET NX PX + DEL on 3 nodes"},
	}
	if r.op("entity_lockproof") != nil {
		rs = append(rs, ratio{"entity_cycle_vs_floor", ns("entity_lockproof", "entity_floor"), "lock→load→modify→save→release ÷ raw round trips"})
		rs = append(rs, ratio{"entity_cycle_vs_floor4", ns("entity_lockproof", "entity_floor4"), "the same ÷ the four-round-trip floor (SET NX PX, GET, SET, DEL)"})
	}
	rs = append(rs, r.scaleRatios()...)
	return append(rs, r.pg.ratios(r.cfg)...)
}

// scaleRatios are the headline numbers of the cost-at-scale sections; a
// section that did not run has none.
func (r *results) scaleRatios() []ratio {
	var rs []ratio
	add := func(name string, v float64, what string) { rs = append(rs, ratio{name, v, what}) }
	if len(r.throughput) > 0 {
		for _, n := range r.cfg.tputClients {
			if r.tput("1 node", "redislock", n) != nil {
				add(fmt.Sprintf("tput_c%d_lockproof_vs_redislock", n), r.tputRatio("1 node", "lockproof", "1 node", "redislock", n), "pairs/s, one node, 10k keys")
				add(fmt.Sprintf("tput_c%d_service_vs_redislock", n), r.tputRatio("1 node", "service", "1 node", "redislock", n), "pairs/s, locked.Service ÷ redislock")
				add(fmt.Sprintf("tput_c%d_floor_vs_redislock", n), r.tputRatio("1 node", "floor", "1 node", "redislock", n), "pairs/s, raw SET NX PX + DEL ÷ redislock")
			}
		}
		for _, n := range r.cfg.tputClients {
			if r.tput("cluster", "lockproof", n) != nil {
				add(fmt.Sprintf("tput_cluster_c%d_vs_1node", n), r.tputRatio("cluster", "lockproof", "1 node", "lockproof", n), "lockproof pairs/s, 3-master Cluster ÷ one node")
				add(fmt.Sprintf("tput_cluster_c%d_lockproof_vs_redislock", n), r.tputRatio("cluster", "lockproof", "cluster", "redislock", n), "pairs/s on the Cluster")
			}
		}
		top := r.cfg.tputClients[len(r.cfg.tputClients)-1]
		if a, b := r.tput("1 node", "lockproof", top), r.tput("1 node", "redislock", top); a != nil && b != nil {
			add("tput_redis_cpu_per_pair_vs_redislock", a.cpuPerOp/b.cpuPerOp, fmt.Sprintf("Redis CPU per pair at %d clients, lockproof ÷ redislock", top))
			add("tput_redis_cpu_per_pair_us", a.cpuPerOp/1e3, "Redis CPU per lockproof pair, µs")
		}
	}
	if len(r.memory) > 0 {
		per := func(id string) float64 { return r.memFig(id).usagePerUnit() }
		add("redis_used_memory_per_ever_locked_key", r.memFig("ever_lockproof").perUnit(), "lockproof, INFO used_memory delta ÷ N keys locked once and released")
		add("redis_bytes_per_ever_locked_key", per("ever_lockproof"), "lockproof, MEMORY USAGE per key locked once and released")
		add("redis_bytes_per_ever_locked_key_counters", per("ever_lockproof_counters"), "lockproof, MEMORY USAGE of the slot fence counters those keys left ÷ N (kept; at most 16384 counters)")
		add("redis_bytes_per_ever_locked_key_redislock", per("ever_redislock"), "bsm/redislock, the same")
		add("redis_bytes_per_waiter_one_key", per("waiter_one_key"), "lockproof, waiters on one key")
		add("redis_bytes_per_waiter_per_key", per("waiter_per_key"), "lockproof, one waiter per key")
		add("redis_bytes_per_held_lock", per("held_lockproof"), "lockproof provider, short tokens")
		add("redis_bytes_per_held_service_lock", per("held_service"), "locked.Service tokens")
		add("redis_bytes_per_held_redislock", per("held_redislock"), "bsm/redislock")
		add("redis_held_lock_vs_redislock", per("held_lockproof")/per("held_redislock"), "bytes per held lock")
		add("redis_held_service_vs_redislock", per("held_service")/per("held_redislock"), "bytes per held lock")
		used := func(id string) float64 { return r.memFig(id).perUnit() }
		add("redis_used_memory_per_held_lock", used("held_lockproof"), "lockproof provider, used_memory delta ÷ locks held (incl. dict buckets, expires)")
		add("redis_used_memory_per_held_service_lock", used("held_service"), "locked.Service, the same")
		add("redis_used_memory_per_held_redislock", used("held_redislock"), "bsm/redislock, the same")
	}
	if len(r.heap) > 0 {
		per := func(id string) float64 { return r.heapFig(id).perUnit() }
		add("heap_bytes_per_lease_service", per("heap_service"), "Go heap per held lease, locked.Service on memprovider")
		add("heap_bytes_per_held_memprovider", per("heap_memprovider"), "Go heap per held lock, memprovider alone")
		add("heap_bytes_per_held_syncmutex_map", per("heap_syncmutex_map"), "Go heap per held lock, keyed sync.Mutex map")
		add("heap_service_vs_syncmutex_map", per("heap_service")/per("heap_syncmutex_map"), "Go heap per held lease")
	}
	if m := r.churn; m != nil && m.err == nil {
		add("memprovider_churn_retained_bytes_per_key", m.retainedPerKey(), fmt.Sprintf("HeapInuse after − before, ÷ %d keys locked once and released", m.n))
		add("memprovider_churn_retained_over_empty_kb", m.retainedOverEmpty()/1e3, "HeapInuse after − an empty provider's, kB (bounded: sweeps keep ≤ 64 free entries per shard)")
		add("memprovider_burst_retained_bytes_per_key", m.burstRetainedPerKey(), fmt.Sprintf("HeapInuse after %d keys held at once were all released, ÷ keys", m.burst))
		add("memprovider_churn_plain_map_retained_bytes_per_key", (m.mapAfter.inuse-m.mapBefore.inuse)/float64(m.n), "a plain map after inserting and then deleting every key (Go maps do not shrink)")
	}
	if len(r.scripts) > 0 {
		u := r.scriptUsec
		add("script_acquire_usec", u("lockproof_acquire"), "acquire.lua, usec_per_call")
		add("script_release_usec", u("lockproof_release"), "release.lua, usec_per_call")
		add("script_pair_vs_redislock", u("lockproof_acquire", "lockproof_release")/u("redislock_obtain", "redislock_release"), "server time per acquire+release")
		add("script_pair_vs_floor", u("lockproof_acquire", "lockproof_release")/u("floor_set", "floor_del"), "÷ SET NX PX + DEL")
		add("script_acquire_fast_copy_vs_lib", u("acquire_fast")/u("lockproof_acquire"), "the fast path as it was before decision 53 ÷ the library's script")
		add("script_empty_usec", u("acquire_empty"), "EVALSHA of return 1, pipelined")
		add("script_empty_rtt_usec", u("acquire_empty_rtt"), "EVALSHA of return 1, one per round trip")
		add("script_acquire_fast_copy_rtt_vs_lib", u("acquire_fast_rtt")/u("lockproof_acquire"), "the same (before decision 53), one per round trip ÷ the library's script")
		add("script_acquire_fast_copy_libargs_vs_lib", u("acquire_fast_rtt_libargs")/u("lockproof_acquire"), "the same with the 5 keys and 5 arguments of before decision 53 ÷ the library's script")
	}
	return rs
}

// paired returns the median over rounds of a's time per op ÷ b's in the
// same round: contenders of a round run back to back, so a paired ratio
// cancels most of the drift of a noisy machine. NaN if either is missing.
func (r *results) paired(a, b string) float64 {
	oa, ob := r.op(a), r.op(b)
	if oa == nil || ob == nil || oa.err != nil || ob.err != nil {
		return math.NaN()
	}
	return pairedMedian(oa.rounds, ob.rounds)
}

// ratioLines returns the "RATIO name=value" lines.
func (r *results) ratioLines() string {
	var b strings.Builder
	for _, x := range r.ratios() {
		fmt.Fprintf(&b, "RATIO %s=%.4g\n", x.name, x.value)
	}
	return b.String()
}

// target is one goal from the issue, checked against this run.
type target struct {
	goal   string
	ratio  string
	limit  float64
	atMost bool // the value must be ≤ limit (else ≥)
}

var targets = []target{
	{"uncontended Redis acquire+release ≤ 1.10 × raw floor", "redis_uncontended_vs_floor", 1.10, true},
	{"uncontended Redis no slower than redislock (≤ 1.00 ×)", "redis_uncontended_vs_redislock", 1.00, true},
	{"contended utilisation ≥ 0.80", "handoff_util_lockproof", 0.80, false},
	{"contended max wait ≤ 1.5 × W × H", "handoff_maxwait_vs_fair", 1.5, true},
	{"memprovider uncontended ≤ 10 × sync.Mutex", "mem_uncontended_vs_syncmutex", 10, true},
	{"pgprovider acquire+release ≤ 1.2 × raw INSERT ON CONFLICT + DELETE", "pg_uncontended_vs_floor", 1.2, true},
	{"pgprovider contended max wait ≤ 1.5 × W × H", "pg_handoff_maxwait_vs_fair", 1.5, true},
}

func (r *results) ratioValue(name string) float64 {
	for _, x := range r.ratios() {
		if x.name == name {
			return x.value
		}
	}
	return math.NaN()
}

// markdown renders the tables (without the RATIO lines).
func (r *results) markdown() string {
	var b strings.Builder
	c := r.cfg
	m := r.machine
	fair := time.Duration(c.workers) * c.hold
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }

	p("### Setup")
	p("")
	p("- Date: %s", m.date)
	p("- Machine: %d CPUs (%s), %s, %s", m.cpus, m.cpuModel, m.platform, m.kernel)
	p("- Toolchain: %s; %s", m.goVersion, m.redis)
	if len(m.deps) > 0 {
		p("- Peers: %s", strings.Join(m.deps, ", "))
	}
	p("- Run: W=%d workers × R=%d turns × H=%s hold; uncontended: each contender alone once for its profile (commands, time inside Redis, allocs), then %d round(s) in which a section's contenders run interleaved in ~2 ms blocks until each has run %s; per op is from the section's median round, ratios are medians of same-round ratios; handoff %d round(s), interleaved, the median-utilisation round shown; lock TTL %s; whole run %s",
		c.workers, c.turns, c.hold, c.rounds, c.opTime, c.handoffRounds, ttl, r.elapsed.Round(time.Second))
	p("")

	p("### 1. Uncontended acquire + release, one Redis node")
	p("")
	r.opTable(&b, secRedis, "redis_floor", "× floor")

	p("### 2. Contended handoff: W=%d × R=%d turns on one key, each holding H=%s (fair wait W·H = %s)", c.workers, c.turns, c.hold, fair)
	p("")
	p("Utilisation = W·R·H ÷ wall (1.0 = the lock is never idle while someone waits; time.Sleep overshoots H a little, so sync.Mutex shows this harness's ceiling). Wait = from the call to acquire until it returns. Idle/turn = (wall − Σ actual holds) ÷ (W·R). Re-taken = turns in which the worker that had just released took the lock again while others were waiting (FIFO: 0%%). Cmds/turn = Redis commands sent per turn by all clients (acquire attempts, polls, releases).")
	p("")
	p("| contender | waiting | utilisation | p50 wait | p99 wait | max wait | max ÷ W·H | idle/turn | re-taken | cmds/turn | rounds (util; max wait) |")
	p("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|")
	for _, h := range r.handoffs {
		if h.err != nil || len(h.rounds) == 0 {
			p("| %s | %s | failed: %s | | | | | | | | |", h.name, h.waiting, mdEscape(errString(h.err)))
			continue
		}
		cmds := "–"
		if h.redis {
			cmds = fmt.Sprintf("%.1f", h.med.cmdsPerTurn)
		}
		var rounds []string
		for _, st := range h.rounds {
			rounds = append(rounds, fmt.Sprintf("%.2f; %s", st.util, fmtDur(st.max)))
		}
		note := strings.Join(rounds, " / ")
		if g := h.giveups.Load(); g > 0 {
			note += fmt.Sprintf("; Lock gave up %d× (out of tries) and was called again", g)
		}
		p("| %s | %s | **%.2f** | %s | %s | %s | %.1f | %s | %.0f%% | %s | %s |", h.name, h.waiting, h.med.util,
			fmtDur(h.med.p50), fmtDur(h.med.p99), fmtDur(h.med.max), float64(h.med.max)/float64(fair),
			fmtDur(h.med.gap), 100*h.med.barged, cmds, note)
	}
	p("")

	p("### 3. In-process: memprovider next to sync.Mutex")
	p("")
	r.opTable(&b, secMem, "mem_syncmutex", "× sync.Mutex")
	p("The contended memprovider and sync.Mutex rows are in table 2.")
	p("")

	p("### 4. Redlock, 3 nodes")
	p("")
	r.opTable(&b, secRedlock, "redlock3_redsync", "× redsync (3 pools)")
	if h := r.handoff("redlock3_lockproof"); h != nil && len(h.fenceIncs) > 0 {
		incs := slices.Sorted(slices.Values(h.fenceIncs))
		p(fmt.Sprintf("Fence increments per grant, lockproof Redlock under %d-worker contention (table 2): median %.2f over %d rounds, worst %.2f (target ≤ 1.5).",
			r.cfg.workers, incs[len(incs)/2], len(incs), incs[len(incs)-1]))
		p("")
	}

	p("### 5. Entity cycle: lock → load → modify → save → release")
	p("")
	if r.op("entity_lockproof") != nil {
		r.opTable(&b, secEntity, "entity_floor", "× raw round trips")
	} else {
		p("Pending: measured once a Redis-backed repository exists (see `bench/entity.go`), next to the same number of raw round trips (SET NX PX, GET, SET, DEL).")
		p("")
	}

	p("### 6. Throughput at scale: %d keys, lock + release pairs per second", tputKeys)
	p("")
	if len(r.throughput) > 0 {
		p("Each client works through its own share of the keys (no contention); contenders of a level run back to back, %d round(s) of %s each, median shown; (×) is the same-round ratio to bsm/redislock on the same topology. Redis CPU/pair = INFO cpu used_cpu_user+sys of all nodes ÷ pairs. The client, the Cluster's 3 masters and (on one node) the server share %d CPUs, so the Cluster cannot scale out here: it measures the cost of routing, not capacity.", r.cfg.tputRounds, r.cfg.tputTime, m.cpus)
		p("")
		r.tputMarkdown(&b)
	} else {
		p("Not run (-sections).")
		p("")
	}

	p("### 7. Memory per key, per waiter, per held lock")
	p("")
	if len(r.memory) > 0 || len(r.heap) > 0 || r.churn != nil {
		r.memMarkdown(&b)
	} else {
		p("Not run (-sections).")
		p("")
	}

	p("### 8. Server time per script (INFO commandstats)")
	p("")
	if len(r.scripts) > 0 {
		p("usec_per_call after CONFIG RESETSTAT, one phase per script, %d calls each, on a redis-server of its own; every key's fence counter exists (steady state). The variants are measurement-only scripts in `bench/scripts/`, sent by EVALSHA in pipelines; − empty script = the script's own work beyond an EVALSHA that does nothing.", r.cfg.scriptCalls)
		p("")
		r.scriptMarkdown(&b)
	} else {
		p("Not run (-sections).")
		p("")
	}

	r.pg.markdown(&b, c)

	p("### Targets")
	p("")
	p("| target | measured | met |")
	p("|---|--:|---|")
	for _, t := range targets {
		v := r.ratioValue(t.ratio)
		met := (t.atMost && v <= t.limit) || (!t.atMost && v >= t.limit)
		verdict := "**no**"
		if met {
			verdict = "yes"
		}
		if math.IsNaN(v) {
			verdict = "not measured"
		}
		p("| %s | %.3g (`%s`) | %s |", t.goal, v, t.ratio, verdict)
	}
	p("")
	return b.String()
}

func (r *results) opTable(b *strings.Builder, section, baseID, baseLabel string) {
	redis := section != secMem
	if redis {
		fmt.Fprintf(b, "| contender | per op | %s | cmds/op | time in Redis/op | allocs/op | rounds |\n|---|--:|--:|--:|--:|--:|---|\n", baseLabel)
	} else {
		fmt.Fprintf(b, "| contender | per op | %s | allocs/op | rounds |\n|---|--:|--:|--:|---|\n", baseLabel)
	}
	for _, o := range r.ops {
		if o.section != section {
			continue
		}
		if o.err != nil || len(o.rounds) == 0 {
			fmt.Fprintf(b, "| %s | failed: %s |%s\n", o.name, mdEscape(errString(o.err)), strings.Repeat(" |", 4))
			continue
		}
		var rounds []string
		for _, ns := range o.rounds {
			rounds = append(rounds, fmtNs(ns))
		}
		fmt.Fprintf(b, "| %s | **%s** | %.2f |", o.name, fmtNs(o.med), r.paired(o.id, baseID))
		if redis {
			fmt.Fprintf(b, " %.1f | %s |", o.profile.cmdsPerOp, fmtNs(o.profile.serverPerOp))
		}
		fmt.Fprintf(b, " %.1f | %s |\n", o.profile.allocsPerOp, strings.Join(rounds, " / "))
	}
	b.WriteString("\n")
}

func errString(err error) string {
	if err == nil {
		return "no result"
	}
	return err.Error()
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// fmtNs formats a duration in nanoseconds with three significant digits.
func fmtNs(ns float64) string {
	switch {
	case ns >= 1e9:
		return fmt.Sprintf("%.3g s", ns/1e9)
	case ns >= 1e6:
		return fmt.Sprintf("%.3g ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.3g µs", ns/1e3)
	default:
		return fmt.Sprintf("%.3g ns", ns)
	}
}

func fmtDur(d time.Duration) string { return fmtNs(float64(d)) }

// Markers around the generated part of a Markdown file (see writeMarkdown).
const (
	mdBegin = "<!-- bench:begin (generated by `cd bench && go run . -md ...`; edits inside are overwritten) -->"
	mdEnd   = "<!-- bench:end -->"
)

// writeMarkdown puts fragment between the markers in the file at path,
// keeping everything outside them; a file without markers gets them
// appended, and a missing file is created.
func writeMarkdown(path, fragment string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	block := mdBegin + "\n\n" + fragment + "\n" + mdEnd + "\n"
	s := string(old)
	i := strings.Index(s, "<!-- bench:begin")
	j := strings.Index(s, mdEnd)
	switch {
	case i >= 0 && j > i:
		rest := strings.TrimPrefix(s[j+len(mdEnd):], "\n")
		s = s[:i] + block + rest
	case s == "":
		s = "# Benchmarks\n\n" + block
	default:
		s = strings.TrimRight(s, "\n") + "\n\n" + block
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
