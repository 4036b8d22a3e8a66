package redisrepo_test

import (
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/locked"
)

func testAll(t *testing.T, c redis.UniversalClient) {
	ctx := t.Context()
	s := newStack(t, c, "all")
	neighbour := newStack(t, c, "allx") // another namespace is not listed
	for _, id := range []string{"b", "a{1}", "c", "gone"} {
		if err := s.repo.Insert(ctx, &entity{Key: id, N: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := neighbour.repo.Insert(ctx, &entity{Key: "z", N: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.repo.DeleteByID(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	// A held lock without a record is not an entity.
	l, err := s.svc.TryAcquire(ctx, "rtest:nope")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	var ids []string
	for e, err := range s.repo.All(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.Key)
	}
	want := []string{"a{1}", "b", "c"}
	if len(ids) != len(want) {
		t.Fatalf("All = %q, want %q", ids, want)
	}
	for i := range want {
		if ids[i] != want[i] {
			t.Fatalf("All = %q, want %q", ids, want)
		}
	}

	if err := s.p.Close(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range s.repo.All(ctx) {
		n++
		if !errors.Is(err, locked.ErrClosed) {
			t.Fatalf("after Close: %v, want ErrClosed", err)
		}
	}
	if n != 1 {
		t.Fatalf("after Close: %d errors, want 1", n)
	}
}

func TestAllServer(t *testing.T)  { testAll(t, redistest.Server(t).Client(t)) }
func TestAllCluster(t *testing.T) { testAll(t, redistest.Cluster(t, 3).Client(t)) }
