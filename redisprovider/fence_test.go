package redisprovider_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/redisprovider"
)

// TestFenceCountersBounded: keys locked once and released leave only the
// counters of their hash slots (at most 16384), not one key each, and a
// key's fences still increase when another key of its slot draws from the
// same counter in between.
func TestFenceCountersBounded(t *testing.T) {
	t.Parallel()
	c := redistest.Server(t).Client(t)
	p := newProvider(t, c, nil)
	ctx := t.Context()
	// 1000 keys, and with each a second key of its slot: the slot tag of
	// its counter, itself a key name in that slot.
	const n = 1000
	var keys []string
	for i := range n {
		key := "bounded:" + strconv.Itoa(i)
		c := p.FenceCounter(key)
		keys = append(keys, key, c[len(redisprovider.DefaultPrefix)+1:strings.IndexByte(c, '}')])
	}
	counters := make(map[string]bool)
	for _, key := range keys {
		_, err := p.TryAcquire(ctx, key, "t", time.Minute)
		require.NoError(t, err)
		require.NoError(t, p.Release(ctx, key, "t"))
		counters[p.FenceCounter(key)] = true
	}
	require.LessOrEqual(t, len(counters), n, "the second keys share their slots' counters")
	// What stays for good (no TTL: release markers lapse) is the counters.
	var forever []string
	it := c.Scan(ctx, 0, "*", 1000).Iterator()
	for it.Next(ctx) {
		if c.PTTL(ctx, it.Val()).Val() == -1 {
			forever = append(forever, it.Val())
		}
	}
	require.NoError(t, it.Err())
	require.Len(t, forever, len(counters), "keys without TTL after %d keys were locked", len(keys))
	for _, k := range forever {
		require.True(t, counters[k], "%s is not a counter", k)
	}

	// Two keys of one slot, interleaved.
	a := "bounded:0"
	b := ""
	for i := 1; b == ""; i++ {
		if k := "other:" + strconv.Itoa(i); p.FenceCounter(k) == p.FenceCounter(a) {
			b = k
		}
	}
	var last uint64
	for i := range 6 {
		key := a
		if i%2 == 1 {
			key = b
		}
		g, err := p.TryAcquire(ctx, key, "t", time.Minute)
		require.NoError(t, err)
		require.Greater(t, g.Fence, last, "fence of %s", key)
		last = g.Fence
		require.NoError(t, p.Release(ctx, key, "t"))
	}
}

// TestMigrateFences: counters of the per-key layout are moved into their
// slot's counter, so fences continue above them; a value that is not a
// counter is left alone; a second run moves nothing.
func TestMigrateFences(t *testing.T) {
	t.Parallel()
	c := redistest.Server(t).Client(t)
	p := newProvider(t, c, nil)
	ctx := t.Context()
	old := map[string]uint64{"m:a": 57, "m:{b}": 9007199254740993, "m:c": 3}
	for key, f := range old {
		lock, _, _, _ := redisprovider.KeysOf(key)
		require.NoError(t, c.Set(ctx, lock+":fence", f, 0).Err())
	}
	lock, _, _, _ := redisprovider.KeysOf("m:foreign")
	require.NoError(t, c.Set(ctx, lock+":fence", "not a counter", 0).Err())
	// A key of m:c's slot already drew a higher fence from the new counter:
	// the move must not lower it.
	require.NoError(t, c.Set(ctx, p.FenceCounter("m:c"), 100, 0).Err())

	n, err := p.MigrateFences(ctx)
	require.NoError(t, err)
	require.Equal(t, len(old), n)
	for key, f := range old {
		lock, _, _, _ := redisprovider.KeysOf(key)
		require.Zero(t, c.Exists(ctx, lock+":fence").Val(), "old counter of %s left", key)
		g, err := p.TryAcquire(ctx, key, "t", time.Minute)
		require.NoError(t, err)
		require.Greater(t, g.Fence, f, "fence of %s after the move", key)
		require.NoError(t, p.Release(ctx, key, "t"))
	}
	require.Equal(t, "not a counter", c.Get(ctx, lock+":fence").Val())
	g, err := p.TryAcquire(ctx, "m:c", "t", time.Minute)
	require.NoError(t, err)
	require.Greater(t, g.Fence, uint64(101), "the move lowered a counter")

	n, err = p.MigrateFences(ctx)
	require.NoError(t, err)
	require.Zero(t, n)

	require.NoError(t, p.Close())
	_, err = p.MigrateFences(ctx)
	require.ErrorIs(t, err, provider.ErrClosed)
}

// TestFenceCounterClusterSlot: on a real Cluster, each key's counter is in
// the key's slot (CLUSTER KEYSLOT), and MigrateFences moves counters on
// every master.
func TestFenceCounterClusterSlot(t *testing.T) {
	t.Parallel()
	cluster := redistest.Cluster(t, 3)
	c := cluster.Client(t)
	p := newProvider(t, c, nil)
	ctx := t.Context()
	keys := []string{"a", "user:42", "user:{42}", "a}b{c", "{x}", "zz"}
	for _, key := range keys {
		lock, _, _, _ := redisprovider.KeysOf(key)
		want, err := c.ClusterKeySlot(ctx, lock).Result()
		require.NoError(t, err)
		got, err := c.ClusterKeySlot(ctx, p.FenceCounter(key)).Result()
		require.NoError(t, err)
		require.Equal(t, want, got, "counter of %q", key)
		require.NoError(t, c.Set(ctx, lock+":fence", 41, 0).Err())
	}
	n, err := p.MigrateFences(ctx)
	require.NoError(t, err)
	require.Equal(t, len(keys), n)
	for _, key := range keys {
		g, err := p.TryAcquire(ctx, key, "t", time.Minute)
		require.NoError(t, err)
		require.Greater(t, g.Fence, uint64(41), "fence of %q", key)
	}
}
