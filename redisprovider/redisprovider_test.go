package redisprovider_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/provider/providertest"
	"github.com/lockproof/lockproof/redisprovider"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// slowPoll makes fallback polling so rare that a conformance wait that ends
// promptly was ended by a published wake-up or the holder's expiry.
var slowPoll = &redisprovider.Options{PollInterval: time.Minute}

func TestConformanceSingleNode(t *testing.T) {
	c := redistest.Server(t).Client(t)
	providertest.Run(t, func(t *testing.T) provider.Provider {
		return newProvider(t, c, slowPoll)
	})
}

func TestConformanceCluster(t *testing.T) {
	c := redistest.Cluster(t, 3).Client(t)
	providertest.Run(t, func(t *testing.T) provider.Provider {
		return newProvider(t, c, slowPoll)
	})
}

func TestConformanceSentinel(t *testing.T) {
	master := redistest.Server(t)
	c := redistest.FailoverClient(t, redistest.Sentinel(t, master))
	providertest.Run(t, func(t *testing.T) provider.Provider {
		return newProvider(t, c, slowPoll)
	})
}

func TestConformanceRedlock(t *testing.T) {
	nodes := redistest.Servers(t, 3)
	clients := make([]redis.UniversalClient, len(nodes))
	for i, n := range nodes {
		clients[i] = n.Client(t)
	}
	providertest.Run(t, func(t *testing.T) provider.Provider {
		return newRedlock(t, clients, &redisprovider.RedlockOptions{Options: *slowPoll})
	})
}
