package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/redisprovider"
	"github.com/lockproof/lockproof/repository/redisrepo"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(redistest.Reporting(m)) }

func runBank(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), args, &out); err != nil {
		t.Fatalf("bank %v: %v\n%s", args, err, out.String())
	}
	if !strings.Contains(out.String(), "total conserved") {
		t.Fatalf("bank %v did not report a conserved total:\n%s", args, out.String())
	}
	return out.String()
}

func TestMemory(t *testing.T) {
	runBank(t, "-transfers", "100")
}

func TestRedis(t *testing.T) {
	srv := redistest.Server(t)
	runBank(t, "-redis", srv.Addr(), "-transfers", "50")
	// The accounts live in Redis, in the namespace: read them back there.
	client := srv.Client(t)
	rp, err := newRedisProvider(client)
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	svc, err := locked.New(rp, &locked.Options{Namespace: "bank"})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	repo, err := redisrepo.New[*Account](svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, id := range []string{"0", "1", "2", "3", "4"} {
		a, err := repo.Find(context.Background(), id)
		if err != nil {
			t.Fatalf("account %s is not in Redis: %v", id, err)
		}
		total += a.Balance
	}
	if total != 5000 {
		t.Fatalf("total in Redis = %d, want 5000", total)
	}
	// A second run against the same Redis starts from fresh accounts.
	runBank(t, "-redis", srv.Addr(), "-transfers", "10")
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-accounts", "1"}, {"-workers", "0"}, {"-nosuch"}} {
		if err := run(context.Background(), args, &bytes.Buffer{}); err == nil {
			t.Errorf("bank %v: no error", args)
		}
	}
}

func newRedisProvider(c redis.UniversalClient) (*redisprovider.Provider, error) {
	return redisprovider.New(c, nil)
}
