package redisprovider_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/redisprovider"
)

// listKeys are keys whose Redis names look like each other's fences,
// queues and records, plus keys with braces (stored under a hash tag).
var listKeys = []string{"ns:a", "ns:a}:fence", "ns:{b}", "ns:c{", "ns:*?[x]", "other:a"}

func testList(t *testing.T, c redis.UniversalClient) {
	ctx := t.Context()
	p := newProvider(t, c, &redisprovider.Options{Prefix: "list[*]:"})
	for _, k := range listKeys {
		_, err := p.TryAcquire(ctx, k, "tok "+k, time.Minute)
		require.NoError(t, err)
		// A record kept beside the lock (as redisrepo does) is not a lock.
		require.NoError(t, c.Set(ctx, p.DataKey(k, "entity"), "{}", 0).Err())
	}
	// A key once held and released leaves its fence counter, not a lock.
	_, err := p.TryAcquire(ctx, "ns:freed", "t", time.Minute)
	require.NoError(t, err)
	require.NoError(t, p.Release(ctx, "ns:freed", "t"))
	// Another provider's prefix is not listed.
	q := newProvider(t, c, &redisprovider.Options{Prefix: "list:"})
	_, err = q.TryAcquire(ctx, "ns:z", "t", time.Minute)
	require.NoError(t, err)

	got, err := p.List(ctx, "ns:")
	require.NoError(t, err)
	slices.SortFunc(got, func(a, b provider.Entry) int { return strings.Compare(a.Key, b.Key) })
	want := slices.Sorted(slices.Values(listKeys[:len(listKeys)-1]))
	keys := make([]string, len(got))
	for i, e := range got {
		keys[i] = e.Key
		require.Equal(t, "tok "+e.Key, e.State.Token)
		require.Positive(t, e.State.Fence)
		require.Greater(t, e.State.TTL, time.Duration(0))
	}
	require.Equal(t, want, keys)

	all, err := p.List(ctx, "")
	require.NoError(t, err)
	require.Len(t, all, len(listKeys))

	require.NoError(t, p.Close())
	_, err = p.List(ctx, "")
	require.ErrorIs(t, err, provider.ErrClosed)
}

func TestListSingleNode(t *testing.T) { testList(t, redistest.Server(t).Client(t)) }

func TestListCluster(t *testing.T) { testList(t, redistest.Cluster(t, 3).Client(t)) }

func TestListRedlockNeedsMajority(t *testing.T) {
	nodes := redistest.Servers(t, 3)
	clients := make([]redis.UniversalClient, len(nodes))
	for i, n := range nodes {
		clients[i] = n.Client(t)
	}
	r := newRedlock(t, clients, &redisprovider.RedlockOptions{Options: *slowPoll})
	ctx := t.Context()
	_, err := r.TryAcquire(ctx, "k", "tok", time.Minute)
	require.NoError(t, err)
	got, err := r.List(ctx, "")
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "k", got[0].Key)

	nodes[0].Stop(t)
	got, err = r.List(ctx, "")
	require.NoError(t, err, "a majority answers")
	require.Len(t, got, 1)
	nodes[1].Stop(t)
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = r.List(lctx, "")
	require.ErrorIs(t, err, provider.ErrUnavailable)
}
