package pgprovider_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/provider/pgprovider"
)

// TestNewBadInput: each bad argument is an *provider.ArgError naming it,
// and no Provider (nor goroutine) is made.
func TestNewBadInput(t *testing.T) {
	pool := newPool(t, "postgres://app@127.0.0.1:1/app")
	cases := []struct {
		name string
		pool bool
		opts *pgprovider.Options
		arg  string
	}{
		{"nil pool", false, nil, "pool"},
		{"table", true, &pgprovider.Options{Table: "locks; DROP"}, "Table"},
		{"long table", true, &pgprovider.Options{Table: strings.Repeat("t", 52)}, "Table"},
		{"poll", true, &pgprovider.Options{PollInterval: -time.Second}, "PollInterval"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pl := pool
			if !c.pool {
				pl = nil
			}
			p, err := pgprovider.New(pl, c.opts)
			var arg *provider.ArgError
			if p != nil || !errors.As(err, &arg) || arg.Arg != c.arg || !errors.Is(err, provider.ErrInvalid) {
				t.Fatalf("New = %v, %v; want nil and an ArgError for %s", p, err, c.arg)
			}
		})
	}
}
