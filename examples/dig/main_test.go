package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/lockproof/lockproof/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(redistest.Reporting(m)) }

func runDig(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), args, &out); err != nil {
		t.Fatalf("dig %v: %v\n%s", args, err, out.String())
	}
	if !strings.Contains(out.String(), "no item lost") {
		t.Fatalf("dig %v did not report its check:\n%s", args, out.String())
	}
	return out.String()
}

func TestMemory(t *testing.T) {
	if out := runDig(t); !strings.Contains(out, "*memprovider.Provider") {
		t.Fatalf("default run not in memory:\n%s", out)
	}
}

func TestRedis(t *testing.T) {
	srv := redistest.Server(t)
	if out := runDig(t, "-redis", srv.Addr(), "-adds", "10"); !strings.Contains(out, "*redisprovider.Provider") {
		t.Fatalf("-redis run not on Redis:\n%s", out)
	}
	// The carts live in Redis, under the Service's namespace.
	keys, err := srv.Client(t).Keys(context.Background(), "*shop:cart:1*entity").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("cart record in Redis: %v, %v", keys, err)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-shoppers", "0"}, {"-adds", "0"}} {
		if err := run(context.Background(), args, &bytes.Buffer{}); err == nil {
			t.Errorf("dig %v: no error", args)
		}
	}
}
