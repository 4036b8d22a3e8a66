// Command bench compares lockproof with github.com/bsm/redislock and
// github.com/go-redsync/redsync/v4 in one run against redis-server
// processes it starts itself (on free loopback ports, no persistence) and
// stops at exit:
//
//  1. uncontended acquire + release on one node, next to the raw
//     SET NX PX + DEL floor;
//  2. a contended handoff: W workers × R turns on one key, each holding it
//     for H, reporting utilisation (W·R·H ÷ wall) and the waits, with the
//     peers at their documented default waiting and at a 1 ms poll, and
//     sync.Mutex as the in-process reference;
//  3. memprovider next to sync.Mutex;
//  4. Redlock over 3 nodes next to redsync with 3 pools;
//  5. the entity cycle, once a Redis repository exists (see entity.go).
//
// It prints Markdown tables and then, last, one "RATIO name=value" line per
// headline ratio. It lives in its own module so the peers never enter the
// library's dependencies. Usage, from the repository root:
//
//	cd bench && go run .                         # the full run, about two minutes on 2 cores
//	cd bench && go run . -quick                  # a smoke test, seconds
//	cd bench && go run . -md ../docs/benchmarks.md
//	cd bench && go run . -sections memory,scripts   # some sections only
//
// Sections 6–8 are the cost at scale: throughput over 10,000 keys at 1–64
// concurrent clients on one node and on a 3-master Cluster, memory per
// key, waiter and held lock in Redis and in the Go heap, and the server
// time of each script (INFO commandstats) next to variants of it.
//
// It needs redis-server on PATH (or -redis-server).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	var (
		cfg     config
		quick   bool
		svgPath string
		mdPath  string
		quiet   bool
	)
	flag.IntVar(&cfg.workers, "workers", 8, "contending workers W")
	flag.IntVar(&cfg.turns, "turns", 50, "turns per worker R (default 5 with -quick)")
	flag.DurationVar(&cfg.hold, "hold", 2*time.Millisecond, "how long each turn holds the lock H")
	flag.DurationVar(&cfg.opTime, "optime", 150*time.Millisecond, "timed loop per uncontended measurement (default 50ms with -quick)")
	flag.IntVar(&cfg.rounds, "rounds", 7, "uncontended rounds; the median is reported (default 1 with -quick)")
	flag.IntVar(&cfg.handoffRounds, "handoff-rounds", 3, "contended rounds; the median-utilisation round is reported (default 1 with -quick)")
	flag.StringVar(&cfg.redisBin, "redis-server", "redis-server", "redis-server binary")
	flag.BoolVar(&quick, "quick", false, "a short run, for CI smoke tests")
	flag.StringVar(&svgPath, "svg", "auto", `write the chart here; "auto" = bench/benchmarks.svg (none with -quick or -sections), "" = none`)
	flag.StringVar(&mdPath, "md", "", "also write the results between markers in this Markdown file (e.g. ../docs/benchmarks.md)")
	flag.BoolVar(&quiet, "q", false, "no progress lines on stderr")
	sections := flag.String("sections", strings.Join(allSections, ","), "comma-separated sections to run: "+strings.Join(allSections, ", "))
	clients := flag.String("tput-clients", "1,4,16,64", "concurrent clients of the throughput section")
	flag.DurationVar(&cfg.tputTime, "tput-time", 120*time.Millisecond, "timed run per throughput contender, level and round (default 30ms with -quick)")
	flag.IntVar(&cfg.tputRounds, "tput-rounds", 7, "throughput rounds; the median is reported (default 1 with -quick)")
	flag.IntVar(&cfg.memKeys, "mem-keys", 100_000, "distinct keys locked once, for Redis bytes per ever-locked key (default 2000 with -quick)")
	flag.IntVar(&cfg.memHeld, "mem-held", 10_000, "locks held at once, for Redis bytes per held lock (default 500 with -quick)")
	flag.IntVar(&cfg.memWaiters, "mem-waiters", 500, "waiters queued, for Redis bytes per waiter (default 20 with -quick)")
	flag.IntVar(&cfg.heapHeld, "heap-held", 10_000, "leases held at once, for Go heap per lease (default 2000 with -quick)")
	flag.IntVar(&cfg.churnKeys, "churn-keys", 1_000_000, "distinct keys locked and released on memprovider, for its heap afterwards (default 20000 with -quick)")
	flag.IntVar(&cfg.scriptCalls, "script-calls", 2000, "calls per INFO commandstats phase (default 200 with -quick)")
	flag.IntVar(&cfg.scriptRounds, "script-rounds", 3, "rounds of every commandstats phase; the median is reported (default 1 with -quick)")
	flag.Parse()
	var err error
	if cfg.sections, err = parseSections(*sections); err == nil {
		cfg.tputClients, err = parseInts(*clients)
	}
	if err == nil {
		err = checkMarkdown(cfg, mdPath)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}

	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if quick {
		applyQuick(&cfg, set)
	}
	if svgPath == "auto" {
		svgPath = ""
		if !quick && len(cfg.sections) == len(allSections) {
			svgPath = defaultSVGPath() // only a full run replaces the chart
		}
	}
	cfg.progress = os.Stderr
	if quiet {
		cfg.progress = io.Discard
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = compare(ctx, cfg, os.Stdout, svgPath, mdPath)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// applyQuick shortens every setting the user did not set.
func applyQuick(cfg *config, set map[string]bool) {
	if !set["turns"] {
		cfg.turns = 5
	}
	if !set["optime"] {
		cfg.opTime = 50 * time.Millisecond
	}
	if !set["rounds"] {
		cfg.rounds = 1
	}
	if !set["handoff-rounds"] {
		cfg.handoffRounds = 1
	}
	for name, v := range map[string]*int{"tput-rounds": &cfg.tputRounds, "mem-keys": &cfg.memKeys, "mem-held": &cfg.memHeld,
		"mem-waiters": &cfg.memWaiters, "heap-held": &cfg.heapHeld, "churn-keys": &cfg.churnKeys, "script-calls": &cfg.scriptCalls, "script-rounds": &cfg.scriptRounds} {
		if !set[name] {
			*v = quickSizes[name]
		}
	}
	if !set["tput-time"] {
		cfg.tputTime = 30 * time.Millisecond
	}
}

// quickSizes are the -quick defaults of the cost-at-scale flags.
var quickSizes = map[string]int{"tput-rounds": 1, "mem-keys": 2000, "mem-held": 500, "mem-waiters": 20,
	"heap-held": 2000, "churn-keys": 20_000, "script-calls": 200, "script-rounds": 1}

// parseSections parses -sections: a comma-separated subset of allSections.
func parseSections(s string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !slices.Contains(allSections, name) {
			return nil, fmt.Errorf("-sections: unknown section %q (have %s)", name, strings.Join(allSections, ", "))
		}
		out[name] = true
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-sections: no section named (have %s)", strings.Join(allSections, ", "))
	}
	return out, nil
}

// parseInts parses a comma-separated list of positive integers.
func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-tput-clients: %q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// compare runs the comparison and writes the Markdown tables and then the
// RATIO lines to out, the chart to svgPath and the results into mdPath
// (each skipped when empty). It reports what it measured even when a
// contender failed, and then returns the error.
func compare(ctx context.Context, cfg config, out io.Writer, svgPath, mdPath string) error {
	if cfg.workers < 2 || cfg.turns < 1 || cfg.hold <= 0 || cfg.opTime <= 0 || cfg.rounds < 1 || cfg.handoffRounds < 1 {
		return fmt.Errorf("need -workers ≥ 2, -turns ≥ 1, -rounds ≥ 1, -handoff-rounds ≥ 1 and positive -hold and -optime")
	}
	if err := checkScale(cfg); err != nil {
		return err
	}
	bin, err := exec.LookPath(cfg.redisBin)
	if err != nil {
		return fmt.Errorf("redis-server not found (install it, e.g. apt-get install redis-server, or pass -redis-server): %w", err)
	}
	cfg.redisBin = bin
	if cfg.progress == nil {
		cfg.progress = io.Discard
	}
	res, runErr := run(ctx, cfg)
	if res == nil {
		return runErr
	}
	md := res.markdown()
	ratios := res.ratioLines()
	if _, err := fmt.Fprint(out, md, "\n", ratios); err != nil {
		return err
	}
	if svgPath != "" {
		if err := os.WriteFile(svgPath, []byte(res.chart()), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(cfg.progress, "chart written to", svgPath)
	}
	if mdPath != "" {
		var frag bytes.Buffer
		frag.WriteString(md)
		if svgPath != "" {
			rel, err := filepath.Rel(filepath.Dir(absPath(mdPath)), absPath(svgPath))
			if err != nil {
				rel = svgPath
			}
			fmt.Fprintf(&frag, "![Handoff utilisation, max wait and uncontended cost per contender](%s)\n\n", filepath.ToSlash(rel))
		}
		fmt.Fprintf(&frag, "### Ratios\n\n```\n%s```\n", ratios)
		if err := writeMarkdown(mdPath, frag.String()); err != nil {
			return err
		}
		fmt.Fprintln(cfg.progress, "results written to", mdPath)
	}
	return runErr
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// defaultSVGPath is benchmarks.svg in the bench module's directory (found
// from the working directory up), or in the working directory.
func defaultSVGPath() string {
	dir, err := os.Getwd()
	if err != nil {
		return "benchmarks.svg"
	}
	for d := dir; ; {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/lockproof/lockproof/bench\n")) {
			return filepath.Join(d, "benchmarks.svg")
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "benchmarks.svg"
		}
		d = parent
	}
}

// checkScale checks the cost-at-scale settings of the sections cfg runs.
func checkScale(cfg config) error {
	if cfg.on("throughput") || cfg.on("cluster") {
		if len(cfg.tputClients) == 0 || cfg.tputTime <= 0 || cfg.tputRounds < 1 {
			return fmt.Errorf("need -tput-clients, a positive -tput-time and -tput-rounds ≥ 1")
		}
		for _, n := range cfg.tputClients {
			if n < 1 || n > tputKeys {
				return fmt.Errorf("-tput-clients: %d is not in 1..%d", n, tputKeys)
			}
		}
	}
	if cfg.on("memory") && (cfg.memKeys < 1 || cfg.memHeld < 1 || cfg.memWaiters < 1 || cfg.heapHeld < 1 || cfg.churnKeys < 1) {
		return fmt.Errorf("need -mem-keys, -mem-held, -mem-waiters, -heap-held and -churn-keys ≥ 1")
	}
	if cfg.on("scripts") && (cfg.scriptCalls < 1 || cfg.scriptRounds < 1) {
		return fmt.Errorf("need -script-calls ≥ 1 and -script-rounds ≥ 1")
	}
	return nil
}

// checkMarkdown refuses -md with a subset of the sections: the Markdown
// block is replaced as a whole, so it would lose the sections not run.
func checkMarkdown(cfg config, mdPath string) error {
	if mdPath != "" && cfg.sections != nil && len(cfg.sections) != len(allSections) {
		return fmt.Errorf("-md replaces every section of %s: it needs a full run, without -sections", mdPath)
	}
	return nil
}
