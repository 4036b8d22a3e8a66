package redistest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/lockproof/lockproof/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestServerSetGet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.Server(t).Client(t)

	if err := rdb.Set(ctx, "TestServerSetGet", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, err := rdb.Get(ctx, "TestServerSetGet").Result(); err != nil || got != "v" {
		t.Fatalf("GET = %q, %v; want \"v\", nil", got, err)
	}
	save, err := rdb.ConfigGet(ctx, "save").Result()
	if err != nil || save["save"] != "" {
		t.Fatalf("CONFIG GET save = %q, %v; want persistence off", save, err)
	}
}

func TestServerArgs(t *testing.T) {
	t.Parallel()
	rdb := redistest.Server(t, redistest.Args("--maxmemory", "12345678")).Client(t)
	got, err := rdb.ConfigGet(context.Background(), "maxmemory").Result()
	if err != nil || got["maxmemory"] != "12345678" {
		t.Fatalf("CONFIG GET maxmemory = %q, %v; want 12345678", got, err)
	}
}

func TestKillRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	node := redistest.Server(t)
	addr := node.Addr()
	rdb := node.Client(t)
	if err := rdb.Set(ctx, "TestKillRestart", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}

	node.Kill(t)
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Fatal("PING after Kill succeeded; want an error")
	}
	node.Kill(t) // killing a stopped node does nothing

	node.Restart(t)
	if node.Addr() != addr {
		t.Fatalf("Addr after Restart = %s; want %s", node.Addr(), addr)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	if err := rdb.Get(ctx, "TestKillRestart").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET after Restart: %v; want redis.Nil (data gone)", err)
	}
}

func TestStopStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	node := redistest.Server(t)
	rdb := node.Client(t)

	node.Stop(t)
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Fatal("PING after Stop succeeded; want an error")
	}
	node.Stop(t) // stopping a stopped node does nothing
	node.Start(t)
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Start: %v", err)
	}
	node.Restart(t) // restarting a running node stops it first
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
}

func TestServers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	nodes := redistest.Servers(t, 3)
	if len(nodes) != 3 {
		t.Fatalf("len(Servers(t, 3)) = %d", len(nodes))
	}
	seen := make(map[string]bool)
	for i, n := range nodes {
		if seen[n.Addr()] {
			t.Fatalf("duplicate address %s", n.Addr())
		}
		seen[n.Addr()] = true
		if err := n.Client(t).Set(ctx, "TestServers", i, 0).Err(); err != nil {
			t.Fatalf("SET on %s: %v", n.Addr(), err)
		}
	}
	for i, n := range nodes { // independent: each keeps its own value
		if got, err := n.Client(t).Get(ctx, "TestServers").Int(); err != nil || got != i {
			t.Fatalf("GET on %s = %d, %v; want %d", n.Addr(), got, err, i)
		}
	}
}

func TestCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cluster := redistest.Cluster(t, 3)
	if len(cluster.Addrs()) != 3 {
		t.Fatalf("Addrs() = %v; want 3", cluster.Addrs())
	}
	rdb := cluster.Client(t)

	// Write keys until every master holds one, then read them all back.
	masters := make(map[string]bool)
	var keys []string
	for i := 0; len(masters) < 3; i++ {
		if i == 1000 {
			t.Fatalf("1000 keys reached only masters %v", masters)
		}
		key := fmt.Sprintf("TestCluster-%d", i)
		if err := rdb.Set(ctx, key, key, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
		keys = append(keys, key)
		master, err := rdb.MasterForKey(ctx, key)
		if err != nil {
			t.Fatalf("MasterForKey(%s): %v", key, err)
		}
		masters[master.Options().Addr] = true
	}
	for _, key := range keys {
		if got, err := rdb.Get(ctx, key).Result(); err != nil || got != key {
			t.Fatalf("GET %s = %q, %v", key, got, err)
		}
	}

	for _, n := range cluster.Nodes() {
		info, err := n.Client(t).ClusterInfo(ctx).Result()
		if err != nil {
			t.Fatalf("CLUSTER INFO on %s: %v", n.Addr(), err)
		}
		for _, want := range []string{"cluster_state:ok", "cluster_known_nodes:3", "cluster_slots_ok:16384"} {
			if !strings.Contains(info, want+"\r\n") {
				t.Errorf("CLUSTER INFO on %s lacks %s:\n%s", n.Addr(), want, info)
			}
		}
	}
}

func TestSentinel(t *testing.T) {
	t.Parallel()
	master := redistest.Server(t)
	s := redistest.Sentinel(t, master)
	c := redistest.FailoverClient(t, s)
	ctx := t.Context()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET through the failover client: %v", err)
	}
	got, err := master.Client(t).Get(ctx, "k").Result()
	if err != nil || got != "v" {
		t.Fatalf("GET on the master = %q, %v; want the value written through the sentinel", got, err)
	}
}

// TestCommandLog: one entry per round trip, the handshake of the client's
// first connection left out.
func TestCommandLog(t *testing.T) {
	c := redistest.Server(t).Client(t)
	log := redistest.LogCommands(c)
	ctx := t.Context()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Get(ctx, "k")
		p.Del(ctx, "k")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := log.Take(), []string{"set", "pipeline"}; !slices.Equal(got, want) {
		t.Fatalf("logged %q, want %q", got, want)
	}
	if got := log.Take(); len(got) != 0 {
		t.Fatalf("a second Take returned %q", got)
	}
}
