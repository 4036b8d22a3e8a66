package redistest

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/internal/faultproxy"
)

// Proxied starts a fault proxy in front of n and returns it with a client
// that talks to n through it. The client re-sends after a lost reply as
// go-redis does by default (MaxRetries 3), with short back-offs so that a
// re-send comes soon, and keeps context deadlines. tweak, if given, adjusts
// the options first. Client and proxy are closed in t.Cleanup.
func Proxied(t testing.TB, n *Node, tweak ...func(*redis.Options)) (*faultproxy.Proxy, *redis.Client) {
	t.Helper()
	px, err := faultproxy.New(n.Addr())
	if err != nil {
		t.Fatal(err)
	}
	o := &redis.Options{
		Addr:                  px.Addr(),
		ContextTimeoutEnabled: true,
		MaxRetries:            3,
		MinRetryBackoff:       time.Millisecond,
		MaxRetryBackoff:       5 * time.Millisecond,
	}
	for _, f := range tweak {
		f(o)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() {
		_ = c.Close()
		_ = px.Close()
	})
	return px, c
}
