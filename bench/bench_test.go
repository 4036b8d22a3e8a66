package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// requireRedis skips the test without redis-server on PATH, or fails it
// when LOCKPROOF_REDIS=required (as in CI).
func requireRedis(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("LOCKPROOF_REDIS") == "required" {
			t.Fatalf("redis-server not found on PATH, and LOCKPROOF_REDIS=required: %v", err)
		}
		t.Skip("redis-server not found; install it or set LOCKPROOF_REDIS=required to make this a failure")
	}
}

// headline lists the RATIO lines every run must print.
var headline = []string{
	"redis_uncontended_vs_floor",
	"redis_uncontended_vs_redislock",
	"handoff_util_lockproof",
	"handoff_util_redislock_1ms",
	"handoff_util_redsync_default",
	"handoff_maxwait_vs_fair",
	"mem_uncontended_vs_syncmutex",
	"redlock3_vs_redsync3",
	"entity_cycle_vs_floor",
	"tput_c1_lockproof_vs_redislock",
	"tput_c4_lockproof_vs_redislock",
	"tput_cluster_c4_vs_1node",
	"tput_redis_cpu_per_pair_vs_redislock",
	"redis_bytes_per_ever_locked_key_counters",
	"redis_bytes_per_waiter_one_key",
	"redis_held_lock_vs_redislock",
	"redis_held_service_vs_redislock",
	"heap_bytes_per_lease_service",
	"heap_service_vs_syncmutex_map",
	"script_acquire_usec",
	"script_release_usec",
	"script_pair_vs_redislock",
	"script_empty_rtt_usec",
}

// TestCompareQuick runs the whole comparison in its quick form and checks
// the output: Markdown tables first, then a RATIO line with a positive
// number for every headline ratio, the chart and the Markdown file.
func TestCompareQuick(t *testing.T) {
	requireRedis(t)
	dir := t.TempDir()
	svg := filepath.Join(dir, "chart.svg")
	md := filepath.Join(dir, "benchmarks.md")
	const prose = "# Benchmarks\n\nHand-written text stays.\n"
	if err := os.WriteFile(md, []byte(prose), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config{workers: 4, turns: 3, hold: time.Millisecond, opTime: 20 * time.Millisecond,
		rounds: 1, handoffRounds: 1, redisBin: "redis-server",
		tputClients: []int{1, 4}, tputTime: 20 * time.Millisecond, tputRounds: 1,
		memKeys: 1000, memHeld: 200, memWaiters: 10, heapHeld: 1000, churnKeys: 10_000, scriptCalls: 100, scriptRounds: 2}
	var out bytes.Buffer
	if err := compare(context.Background(), cfg, &out, svg, md); err != nil {
		t.Fatalf("compare: %v\n%s", err, out.String())
	}

	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	ratios := map[string]float64{}
	firstRatio, tableRows := -1, 0
	for i, line := range lines {
		if name, val, ok := strings.Cut(strings.TrimPrefix(line, "RATIO "), "="); ok && strings.HasPrefix(line, "RATIO ") {
			if firstRatio < 0 {
				firstRatio = i
			}
			v, err := strconv.ParseFloat(val, 64)
			if err != nil {
				t.Errorf("%q: value does not parse: %v", line, err)
			}
			ratios[name] = v
			continue
		}
		if firstRatio >= 0 {
			t.Errorf("line %d after the RATIO lines: %q", i, line)
		}
		if strings.HasPrefix(line, "| ") && strings.Contains(line, "**") {
			tableRows++
		}
	}
	// Heap deltas that a fixed memprovider may bring to zero or below
	// (GC noise), and the bytes a key ever locked keeps of its own (zero
	// since fence counters are per slot): a number, not necessarily positive.
	for _, name := range []string{"memprovider_churn_retained_bytes_per_key", "memprovider_burst_retained_bytes_per_key", "redis_bytes_per_ever_locked_key"} {
		if v, ok := ratios[name]; !ok || math.IsNaN(v) || math.IsInf(v, 0) {
			t.Errorf("RATIO %s=%v (present %v), want a number", name, v, ok)
		}
	}
	for _, name := range headline {
		v, ok := ratios[name]
		switch {
		case !ok:
			t.Errorf("no RATIO %s line", name)
		case math.IsNaN(v) || math.IsInf(v, 0) || v <= 0:
			t.Errorf("RATIO %s=%v, want a positive number", name, v)
		}
	}
	// uncontended + handoff contenders, throughput (4 per topology), memory
	// (7 Redis, 3 heap, 1 churn), scripts (6 + 13 variants)
	if want := 12 + 8 + 8 + 11 + 19; tableRows < want {
		t.Errorf("%d table rows with results, want at least %d:\n%s", tableRows, want, out.String())
	}

	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); !strings.HasPrefix(s, "<svg ") || !strings.HasSuffix(s, "</svg>\n") || !strings.Contains(s, "<rect ") {
		t.Errorf("chart is not an SVG with bars:\n%.300s", s)
	}
	b, err = os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{prose, mdBegin, mdEnd, "| contender |", "RATIO handoff_util_lockproof=", "](chart.svg)",
		"### 6. Throughput", "### 7. Memory", "### 8. Server time", "RATIO script_pair_vs_redislock="} {
		if !strings.Contains(string(b), want) {
			t.Errorf("Markdown file lacks %q", want)
		}
	}
}

func TestWriteMarkdownKeepsTheRest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.md")
	if err := writeMarkdown(path, "first\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	doc := "intro\n" + string(b) + "outro\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if err := writeMarkdown(path, "second\n"); err != nil {
			t.Fatal(err)
		}
	}
	b, _ = os.ReadFile(path)
	got := string(b)
	want := "intro\n# Benchmarks\n\n" + mdBegin + "\n\nsecond\n\n" + mdEnd + "\noutro\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestQuantileAndMedian(t *testing.T) {
	ds := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5}, {0.99, 10}, {0, 1}, {1, 10}} {
		if got := quantile(ds, c.q); got != c.want {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median = %v, want 2", got)
	}
}

func TestChartWithoutResults(t *testing.T) {
	r := &results{cfg: config{workers: 8, turns: 1, hold: time.Millisecond}}
	s := r.chart()
	if !strings.HasPrefix(s, "<svg ") || strings.Count(s, "no data") != 3 {
		t.Errorf("empty chart:\n%s", s)
	}
}
