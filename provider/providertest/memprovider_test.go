package providertest_test

import (
	"errors"
	"testing"

	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/provider/providertest"
)

func TestMemProvider(t *testing.T) {
	providertest.Run(t, func(t *testing.T) provider.Provider {
		p := memprovider.New()
		t.Cleanup(func() {
			if err := p.Close(); err != nil && !errors.Is(err, provider.ErrClosed) {
				t.Errorf("memprovider Close: %v", err)
			}
		})
		return p
	})
}
