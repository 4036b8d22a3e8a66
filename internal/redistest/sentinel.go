package redistest

import (
	"testing"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the master name that [Sentinel] monitors.
const SentinelMaster = "lockproof"

// Sentinel starts a Redis Sentinel (redis-server --sentinel) that monitors
// master under the name SentinelMaster, with a quorum of one, and waits
// until it answers PING and names the master. It is stopped in t.Cleanup.
func Sentinel(t testing.TB, master *Node) *Node {
	t.Helper()
	conf := "sentinel monitor " + SentinelMaster + " 127.0.0.1 " + master.Addr()[len("127.0.0.1:"):] + " 1\n" +
		"sentinel resolve-hostnames no\n"
	n := Server(t, func(c *config) { c.conf = conf }, Args("--sentinel"))
	c := redis.NewSentinelClient(&redis.Options{Addr: n.Addr()})
	defer c.Close()
	addr, err := c.GetMasterAddrByName(t.Context(), SentinelMaster).Result()
	if err != nil || len(addr) != 2 || addr[0]+":"+addr[1] != master.Addr() {
		t.Fatalf("redistest: sentinel %s names master %v (%v), want %s", n.Addr(), addr, err, master.Addr())
	}
	return n
}

// FailoverClient returns a client that finds its master through the
// sentinels, as a Sentinel deployment's users connect; it is closed in
// t.Cleanup.
func FailoverClient(t testing.TB, sentinels ...*Node) *redis.Client {
	t.Helper()
	addrs := make([]string, len(sentinels))
	for i, s := range sentinels {
		addrs[i] = s.Addr()
	}
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:            SentinelMaster,
		SentinelAddrs:         addrs,
		ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}
