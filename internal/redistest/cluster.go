package redistest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterTimeout bounds the wait for a new cluster to reach cluster_state:ok.
const clusterTimeout = 20 * time.Second

// ClusterHandle is a local Redis Cluster of masters only, started by
// [Cluster] and stopped in t.Cleanup.
type ClusterHandle struct {
	nodes []*Node
}

// Cluster starts a Redis Cluster of the given number of masters (3 if
// masters <= 0) and no replicas, the hash slots split evenly among them. It
// returns once every node reports cluster_state:ok, knows every node and
// sees all 16384 slots served, or fails the test after 20s.
func Cluster(t testing.TB, masters int, opts ...Option) *ClusterHandle {
	t.Helper()
	if masters <= 0 {
		masters = 3
	}
	opts = append([]Option{
		Args("--cluster-enabled", "yes", "--cluster-node-timeout", "2000",
			"--cluster-config-file", "nodes.conf"), // inside the node's --dir
		func(c *config) { c.busPort = true }, // port+10000 may exceed 65535
	}, opts...)
	h := &ClusterHandle{nodes: Servers(t, masters, opts...)}

	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	clients := make([]*redis.Client, masters)
	for i, n := range h.nodes {
		clients[i] = redis.NewClient(&redis.Options{Addr: n.Addr()})
		defer clients[i].Close()
	}
	if err := h.create(ctx, clients); err != nil {
		t.Fatalf("redistest: create cluster: %v", err)
	}
	if err := h.waitOK(ctx, clients); err != nil {
		t.Fatalf("redistest: cluster %v not ready: %v", h.Addrs(), err)
	}
	return h
}

// create gives each node a distinct config epoch and an even share of the
// slots, then has the first node meet the others; gossip does the rest. This
// is what redis-cli --cluster create does, without needing redis-cli.
func (h *ClusterHandle) create(ctx context.Context, clients []*redis.Client) error {
	const slots = 16384
	for i, c := range clients {
		if err := c.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			return fmt.Errorf("%s: CLUSTER SET-CONFIG-EPOCH: %w", h.nodes[i].Addr(), err)
		}
		lo, hi := i*slots/len(clients), (i+1)*slots/len(clients)-1
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			return fmt.Errorf("%s: CLUSTER ADDSLOTSRANGE %d %d: %w", h.nodes[i].Addr(), lo, hi, err)
		}
	}
	for _, n := range h.nodes[1:] {
		// The bus port is not port+10000, so MEET needs it explicitly.
		if err := clients[0].Do(ctx, "CLUSTER", "MEET", "127.0.0.1", n.port, n.busPort).Err(); err != nil {
			return fmt.Errorf("CLUSTER MEET %s: %w", n.Addr(), err)
		}
	}
	return nil
}

// waitOK polls CLUSTER INFO on every node until all agree the cluster is
// whole, or ctx ends.
func (h *ClusterHandle) waitOK(ctx context.Context, clients []*redis.Client) error {
	want := []string{
		"cluster_state:ok",
		"cluster_slots_ok:16384",
		fmt.Sprintf("cluster_known_nodes:%d", len(clients)),
	}
	var last string
	for {
		ok := true
		for i, c := range clients {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil {
				last = fmt.Sprintf("%s: %v", h.nodes[i].Addr(), err)
				ok = false
				break
			}
			if missing := missingLines(info, want); missing != nil {
				last = fmt.Sprintf("%s: CLUSTER INFO lacks %v:\n%s", h.nodes[i].Addr(), missing, info)
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w; last: %s", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// missingLines returns the lines of want that info does not contain.
func missingLines(info string, want []string) []string {
	have := make(map[string]bool)
	for _, line := range strings.Split(info, "\n") {
		have[strings.TrimSpace(line)] = true
	}
	var missing []string
	for _, w := range want {
		if !have[w] {
			missing = append(missing, w)
		}
	}
	return missing
}

// Addrs returns the addresses of the cluster's nodes.
func (h *ClusterHandle) Addrs() []string {
	addrs := make([]string, len(h.nodes))
	for i, n := range h.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Nodes returns the cluster's nodes, to kill or restart one of them. A
// restarted node keeps its nodes.conf and so rejoins the cluster.
func (h *ClusterHandle) Nodes() []*Node {
	return append([]*Node(nil), h.nodes...)
}

// Client returns a cluster client seeded with every node, closed in
// t.Cleanup.
func (h *ClusterHandle) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: h.Addrs(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}
