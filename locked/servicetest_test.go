package locked_test

import (
	"testing"
	"time"

	"github.com/lockproof/lockproof/locked/servicetest"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/provider"
)

func TestServiceSuiteMemprovider(t *testing.T) {
	servicetest.Run(t, servicetest.Harness{
		NewPair: func(t *testing.T) (provider.Provider, provider.Provider) {
			p := memprovider.New()
			t.Cleanup(func() { _ = p.Close() })
			return p, p
		},
		ShortTTL: 50 * time.Millisecond,
	})
}
