package redisprovider_test

// Uncontended acquire+release against one local redis-server, beside the
// floor of any Redis lock: SET NX PX and DEL, two round trips. Run with
//
//	go test -run '^$' -bench . ./redisprovider/
//
// lockproof and lockproof_service also report x_raw, their ns/op divided by
// raw_setnx_del's, when raw_setnx_del ran before them in the same process.
// With -count=N each sub-benchmark runs N times in a row, so x_raw compares
// with the last raw_setnx_del run only; on a noisy machine compare the
// ns/op columns with benchstat instead.

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/redisprovider"
)

const benchTTL = 10 * time.Second

// nsPerOp returns the mean time per iteration of a finished b.Loop.
func nsPerOp(b *testing.B) float64 {
	return float64(b.Elapsed().Nanoseconds()) / float64(b.N)
}

func BenchmarkUncontended(b *testing.B) {
	ctx := context.Background()
	rdb := redistest.Server(b).Client(b)
	p, err := redisprovider.New(rdb, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close() })
	svc, err := locked.New(p, &locked.Options{TTL: benchTTL})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = svc.Close() })

	var rawNs float64 // raw_setnx_del's ns/op, once it has run
	reportRatio := func(b *testing.B) {
		if rawNs > 0 {
			b.ReportMetric(nsPerOp(b)/rawNs, "x_raw")
		}
	}

	b.Run("raw_setnx_del", func(b *testing.B) {
		key, token := "bench:raw:"+uuid.NewString(), uuid.NewString()
		for b.Loop() {
			ok, err := rdb.SetNX(ctx, key, token, benchTTL).Result() // SET key token EX 10 NX
			if err != nil || !ok {
				b.Fatalf("SET NX = %v, %v", ok, err)
			}
			if err := rdb.Del(ctx, key).Err(); err != nil {
				b.Fatal(err)
			}
		}
		rawNs = nsPerOp(b)
	})

	b.Run("lockproof", func(b *testing.B) {
		key, token := "bench:lockproof:"+uuid.NewString(), uuid.NewString()
		for b.Loop() {
			if _, err := p.TryAcquire(ctx, key, token, benchTTL); err != nil {
				b.Fatal(err)
			}
			if err := p.Release(ctx, key, token); err != nil {
				b.Fatal(err)
			}
		}
		reportRatio(b)
	})

	b.Run("lockproof_service", func(b *testing.B) {
		key := "bench:service:" + uuid.NewString()
		for b.Loop() {
			l, err := svc.TryAcquire(ctx, key)
			if err != nil {
				b.Fatal(err)
			}
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
		}
		reportRatio(b)
	})
}

func BenchmarkRedlock3(b *testing.B) {
	ctx := context.Background()
	nodes := redistest.Servers(b, 3)
	clients := make([]redis.UniversalClient, len(nodes))
	for i, n := range nodes {
		clients[i] = n.Client(b)
	}
	r, err := redisprovider.NewRedlock(clients, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close() })
	key, token := "bench:redlock:"+uuid.NewString(), uuid.NewString()
	for b.Loop() {
		if _, err := r.TryAcquire(ctx, key, token, benchTTL); err != nil {
			b.Fatal(err)
		}
		if err := r.Release(ctx, key, token); err != nil {
			b.Fatal(err)
		}
	}
}
