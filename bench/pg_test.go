package main

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lockproof/lockproof/internal/pgtest"
)

// TestPostgresSection runs the postgres section alone in a quick form and
// checks that it prints its table and a positive RATIO line for each of
// its headline ratios (skipped without PostgreSQL, unless
// LOCKPROOF_POSTGRES=required).
func TestPostgresSection(t *testing.T) {
	requireRedis(t)
	pgtest.Require(t)
	cfg := config{workers: 4, turns: 3, hold: time.Millisecond, opTime: 20 * time.Millisecond,
		rounds: 2, handoffRounds: 1, redisBin: "redis-server", sections: map[string]bool{"postgres": true}}
	var out bytes.Buffer
	if err := compare(context.Background(), cfg, &out, "", ""); err != nil {
		t.Fatalf("compare: %v\n%s", err, out.String())
	}
	s := out.String()
	if !strings.Contains(s, "### 9. PostgreSQL") || !strings.Contains(s, "| lockproof pgprovider TryAcquire + Release | **") {
		t.Fatalf("no PostgreSQL table in:\n%s", s)
	}
	for _, name := range []string{"pg_uncontended_vs_floor", "pg_entity_cycle_vs_raw", "pg_handoff_util", "pg_handoff_maxwait_vs_fair"} {
		_, rest, ok := strings.Cut(s, "RATIO "+name+"=")
		if !ok {
			t.Fatalf("no RATIO %s in:\n%s", name, s)
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		if err != nil || !(v > 0) {
			t.Fatalf("RATIO %s=%q, want a positive number", name, strings.Fields(rest)[0])
		}
	}
}
