package redisprovider_test

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/locked/servicetest"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/redisprovider"
)

// The Service-level suite, with two Providers on one deployment standing
// for two processes.

func TestServiceSuiteSingleNode(t *testing.T) {
	c := redistest.Server(t).Client(t)
	servicetest.Run(t, servicetest.Harness{NewPair: func(t *testing.T) (provider.Provider, provider.Provider) {
		return newProvider(t, c, slowPoll), newProvider(t, c, slowPoll)
	}})
}

func TestServiceSuiteCluster(t *testing.T) {
	c := redistest.Cluster(t, 3).Client(t)
	servicetest.Run(t, servicetest.Harness{NewPair: func(t *testing.T) (provider.Provider, provider.Provider) {
		return newProvider(t, c, slowPoll), newProvider(t, c, slowPoll)
	}})
}

func TestServiceSuiteRedlock(t *testing.T) {
	nodes := redistest.Servers(t, 3)
	clients := make([]redis.UniversalClient, len(nodes))
	for i, n := range nodes {
		clients[i] = n.Client(t)
	}
	opts := &redisprovider.RedlockOptions{Options: *slowPoll}
	servicetest.Run(t, servicetest.Harness{NewPair: func(t *testing.T) (provider.Provider, provider.Provider) {
		return newRedlock(t, clients, opts), newRedlock(t, clients, opts)
	}})
}
