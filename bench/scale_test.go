package main

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestThroughputRunsEveryClientOnItsOwnKeys(t *testing.T) {
	keys := tputKeyNames("k", 100)
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		busy sync.Map // key -> struct{} while some client is inside op on it
		dup  atomic.Int64
	)
	rate, err := throughput(context.Background(), 4, keys, 20*time.Millisecond, func(_ context.Context, key string) error {
		if _, loaded := busy.LoadOrStore(key, struct{}{}); loaded {
			dup.Add(1)
		}
		mu.Lock()
		seen[key]++
		mu.Unlock()
		busy.Delete(key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rate <= 0 {
		t.Errorf("rate = %v, want > 0", rate)
	}
	if dup.Load() != 0 {
		t.Errorf("%d times two clients were inside op on the same key", dup.Load())
	}
	// Every client does at least 8 ops before it looks at the clock, each
	// on another key of its own share of 25.
	if len(seen) < 4*8 {
		t.Errorf("%d keys used, want at least 32", len(seen))
	}
}

func TestThroughputStopsAtTheFirstError(t *testing.T) {
	boom := errors.New("boom")
	var calls atomic.Int64
	_, err := throughput(context.Background(), 3, tputKeyNames("k", 9), time.Minute, func(context.Context, string) error {
		if calls.Add(1) == 5 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
}

func TestThroughputBadArguments(t *testing.T) {
	op := func(context.Context, string) error { t.Error("op called"); return nil }
	for _, c := range []struct {
		clients, keys int
	}{{0, 10}, {11, 10}, {1, 0}} {
		if _, err := throughput(context.Background(), c.clients, tputKeyNames("k", c.keys), time.Millisecond, op); err == nil {
			t.Errorf("clients=%d keys=%d: no error", c.clients, c.keys)
		}
	}
}

func TestParallelCoversEveryIndexOnce(t *testing.T) {
	counts := make([]atomic.Int64, 103)
	if err := parallel(len(counts), 7, func(i int) error { counts[i].Add(1); return nil }); err != nil {
		t.Fatal(err)
	}
	for i := range counts {
		if n := counts[i].Load(); n != 1 {
			t.Errorf("index %d ran %d times", i, n)
		}
	}
	boom := errors.New("boom")
	if err := parallel(10, 3, func(i int) error {
		if i == 4 {
			return boom
		}
		return nil
	}); !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
}

func TestHeapDeltaSeesWhatIsKept(t *testing.T) {
	var kept []byte
	alloc, inuse := heapDelta(func() { kept = make([]byte, 4<<20) })
	if alloc < 4<<20 || inuse < 4<<20 {
		t.Errorf("kept 4 MiB, delta alloc %.0f inuse %.0f", alloc, inuse)
	}
	if len(kept) != 4<<20 {
		t.Fatal("kept lost")
	}
	kept = nil
	alloc, _ = heapDelta(func() { _ = make([]byte, 4<<20) })
	if alloc >= 1<<20 {
		t.Errorf("kept nothing, delta alloc %.0f", alloc)
	}
}

func TestKeyedMutexesExclude(t *testing.T) {
	k := &keyedMutexes{m: map[string]*sync.Mutex{}}
	k.lock("a")
	k.lock("b") // another key does not block
	got := make(chan struct{})
	go func() {
		k.lock("a")
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("second lock of a held key returned")
	case <-time.After(20 * time.Millisecond):
	}
	k.m["a"].Unlock()
	<-got
}

func TestHeapHeldAndChurn(t *testing.T) {
	figs, err := runHeapHeld(context.Background(), 500)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]float64{}
	for _, f := range figs {
		ids[f.id] = f.perUnit()
	}
	for _, id := range []string{"heap_syncmutex_map", "heap_memprovider", "heap_service"} {
		if v, ok := ids[id]; !ok || !(v > 0) {
			t.Errorf("%s = %v (present %v), want > 0 bytes per held lock", id, v, ok)
		}
	}
	m := runMemChurn(context.Background(), 5000)
	if m.err != nil {
		t.Fatal(m.err)
	}
	if m.held != 0 {
		t.Errorf("%d keys still held after release", m.held)
	}
	if m.n != 5000 || m.before.inuse <= 0 || m.after.inuse <= 0 || m.dropped.inuse <= 0 {
		t.Errorf("churn readings missing: %+v", m)
	}
	if math.IsNaN(m.retainedPerKey()) || math.IsNaN(m.burstRetainedPerKey()) {
		t.Error("retainedPerKey or burstRetainedPerKey is NaN")
	}
	if m.burst != 5000 || !(m.burstHeld.inuse > m.burstBefore.inuse) {
		t.Errorf("burst of %d keys: held %v, before %v: holding keys took no heap", m.burst, m.burstHeld.inuse, m.burstBefore.inuse)
	}
}

func TestPerUnitWithoutData(t *testing.T) {
	for _, f := range []*memFigure{nil, {n: 0, bytes: 10}, {n: 1, bytes: 10, err: errors.New("x")}} {
		if v := f.perUnit(); !math.IsNaN(v) {
			t.Errorf("%+v: perUnit = %v, want NaN", f, v)
		}
	}
	if v := (&memFigure{n: 4, bytes: 10}).perUnit(); v != 2.5 {
		t.Errorf("perUnit = %v, want 2.5", v)
	}
	var h *heapFigure
	if v := h.perUnit(); !math.IsNaN(v) {
		t.Errorf("nil heapFigure perUnit = %v", v)
	}
	var m *memChurn
	if v := m.retainedPerKey(); !math.IsNaN(v) {
		t.Errorf("nil memChurn retainedPerKey = %v", v)
	}
	if v := m.burstRetainedPerKey(); !math.IsNaN(v) {
		t.Errorf("nil memChurn burstRetainedPerKey = %v", v)
	}
}

// TestScaleRatios checks the arithmetic of the cost-at-scale RATIO lines
// on made-up results.
func TestScaleRatios(t *testing.T) {
	r := &results{cfg: config{tputClients: []int{1, 4}}}
	row := func(top, id string, clients int, cpu float64, rounds ...float64) *tputRow {
		return &tputRow{topology: top, id: id, clients: clients, rounds: rounds, med: median(rounds), cpuPerOp: cpu}
	}
	r.throughput = []*tputRow{
		row("1 node", "lockproof", 1, 0, 80, 90, 100),
		row("1 node", "redislock", 1, 0, 100, 100, 100),
		row("1 node", "service", 1, 0, 50, 50, 50),
		row("1 node", "floor", 1, 0, 200, 200, 200),
		row("1 node", "lockproof", 4, 60e3, 300, 300, 300),
		row("1 node", "redislock", 4, 40e3, 200, 200, 200),
		row("cluster", "lockproof", 4, 0, 150),
		row("cluster", "redislock", 4, 0, 100),
		{topology: "1 node", id: "service", clients: 4, err: errors.New("failed")},
	}
	r.memory = []*memFigure{
		{id: "ever_lockproof", n: 100, bytes: 7400, usage: 72},
		{id: "ever_lockproof_counters", n: 100, bytes: nan, usage: 0.5},
		{id: "held_lockproof", n: 10, bytes: 2000, usage: 240},
		{id: "held_redislock", n: 10, bytes: 1000, usage: 160},
	}
	r.heap = []*heapFigure{{id: "heap_service", n: 10, alloc: 6000}, {id: "heap_syncmutex_map", n: 10, alloc: 600}}
	r.churn = &memChurn{n: 1000, before: heapPoint{inuse: 1000}, after: heapPoint{inuse: 31000}, mapBefore: heapPoint{inuse: 0}, mapAfter: heapPoint{inuse: 45000},
		burst: 100, burstBefore: heapPoint{inuse: 1000}, burstAfter: heapPoint{inuse: 13000}}
	r.scripts = []*scriptRow{
		{id: "lockproof_acquire", calls: 1, usec: 10}, {id: "lockproof_release", calls: 1, usec: 6},
		{id: "redislock_obtain", calls: 1, usec: 5}, {id: "redislock_release", calls: 1, usec: 3},
		{id: "floor_set", calls: 1, usec: 1.5}, {id: "floor_del", calls: 1, usec: 0.5},
		{id: "acquire_fast", calls: 1, usec: 5}, {id: "acquire_empty", calls: 0, usec: 2}, // no calls: not measured
	}
	got := map[string]float64{}
	for _, x := range r.scaleRatios() {
		got[x.name] = x.value
	}
	for name, want := range map[string]float64{
		"tput_c1_lockproof_vs_redislock":                     0.9, // median of same-round ratios
		"tput_c1_service_vs_redislock":                       0.5,
		"tput_c1_floor_vs_redislock":                         2,
		"tput_c4_lockproof_vs_redislock":                     1.5,
		"tput_cluster_c4_vs_1node":                           0.5,
		"tput_cluster_c4_lockproof_vs_redislock":             1.5,
		"tput_redis_cpu_per_pair_vs_redislock":               1.5,
		"tput_redis_cpu_per_pair_us":                         60,
		"redis_bytes_per_ever_locked_key":                    72,
		"redis_used_memory_per_ever_locked_key":              74,
		"redis_bytes_per_ever_locked_key_counters":           0.5,
		"redis_bytes_per_held_lock":                          240,
		"redis_held_lock_vs_redislock":                       1.5,
		"heap_bytes_per_lease_service":                       600,
		"heap_service_vs_syncmutex_map":                      10,
		"memprovider_churn_retained_bytes_per_key":           30,
		"memprovider_churn_plain_map_retained_bytes_per_key": 45,
		"memprovider_burst_retained_bytes_per_key":           120,
		"script_acquire_usec":                                10,
		"script_pair_vs_redislock":                           2,
		"script_pair_vs_floor":                               8,
		"script_acquire_fast_copy_vs_lib":                    0.5,
	} {
		if v, ok := got[name]; !ok || math.Abs(v-want) > 1e-9 {
			t.Errorf("RATIO %s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	for _, name := range []string{"tput_c4_service_vs_redislock", "script_empty_usec", "redis_bytes_per_waiter_one_key"} {
		if v := got[name]; !math.IsNaN(v) {
			t.Errorf("RATIO %s = %v, want NaN (not measured)", name, v)
		}
	}
	var b strings.Builder
	r.tputMarkdown(&b)
	for _, want := range []string{"| 1 node | ", "failed: failed", "**300/s** (1.50×)", "| cluster | "} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("throughput table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestCommandStatsAndInfoFields(t *testing.T) {
	info := "# Commandstats\r\ncmdstat_evalsha:calls=200,usec=1986,usec_per_call=9.93,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_set:calls=3,usec=6,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r\n"
	st, err := commandStats(info)
	if err != nil {
		t.Fatal(err)
	}
	if got := st["evalsha"]; got.calls != 200 || got.usecPerCall != 9.93 {
		t.Errorf("evalsha = %+v", got)
	}
	if got := st["set"]; got.calls != 3 || got.usecPerCall != 2 {
		t.Errorf("set = %+v", got)
	}
	if len(st) != 2 {
		t.Errorf("%d commands, want 2: %v", len(st), st)
	}
	if _, err := commandStats("cmdstat_get:calls=x,usec=1,usec_per_call=1"); err == nil {
		t.Error("bad calls: no error")
	}
	mem := "# Memory\r\nused_memory:964072\r\nused_memory_human:941.48K\r\nmem_clients_normal:0\r\n"
	if v, err := infoField(mem, "used_memory"); err != nil || v != 964072 {
		t.Errorf("used_memory = %v, %v", v, err)
	}
	if _, err := infoField(mem, "used_memory_rss"); err == nil {
		t.Error("missing field: no error")
	}
	if !hasLines("a:1\r\nb:2\r\n", []string{"a:1", "b:2"}) || hasLines("a:1\r\n", []string{"b:2"}) {
		t.Error("hasLines")
	}
}

func TestParseFlags(t *testing.T) {
	s, err := parseSections("memory, scripts")
	if err != nil || !s["memory"] || !s["scripts"] || len(s) != 2 {
		t.Errorf("parseSections = %v, %v", s, err)
	}
	for _, bad := range []string{"memory,nope", "", " , "} {
		if _, err := parseSections(bad); err == nil {
			t.Errorf("parseSections(%q): no error", bad)
		}
	}
	n, err := parseInts("1, 4,16")
	if err != nil || len(n) != 3 || n[2] != 16 {
		t.Errorf("parseInts = %v, %v", n, err)
	}
	for _, bad := range []string{"1,x", "0", "-3", ""} {
		if _, err := parseInts(bad); err == nil {
			t.Errorf("parseInts(%q): no error", bad)
		}
	}
	cfg := config{sections: map[string]bool{"memory": true}}
	if cfg.on("throughput") || !cfg.on("memory") || !(config{}).on("throughput") {
		t.Error("config.on")
	}
	for _, c := range []config{
		{sections: map[string]bool{"throughput": true}, tputClients: []int{1}, tputTime: 0, tputRounds: 1},
		{sections: map[string]bool{"throughput": true}, tputClients: []int{tputKeys + 1}, tputTime: time.Second, tputRounds: 1},
		{sections: map[string]bool{"memory": true}, memKeys: 1},
		{sections: map[string]bool{"scripts": true}},
	} {
		if err := checkScale(c); err == nil {
			t.Errorf("checkScale(%+v): no error", c)
		}
	}
	if err := checkMarkdown(config{sections: map[string]bool{"memory": true}}, "b.md"); err == nil {
		t.Error("checkMarkdown: -md with -sections memory: no error")
	}
	all, _ := parseSections(strings.Join(allSections, ","))
	for _, c := range []struct {
		cfg config
		md  string
	}{{config{sections: all}, "b.md"}, {config{}, "b.md"}, {config{sections: map[string]bool{"memory": true}}, ""}} {
		if err := checkMarkdown(c.cfg, c.md); err != nil {
			t.Errorf("checkMarkdown(%v, %q): %v", c.cfg.sections, c.md, err)
		}
	}
	ok := config{sections: map[string]bool{"throughput": true}, tputClients: []int{1, 64}, tputTime: time.Second, tputRounds: 1}
	if err := checkScale(ok); err != nil {
		t.Errorf("checkScale: %v", err)
	}
}
