package memprovider

import (
	"context"
	"strings"
	"time"

	"github.com/lockproof/lockproof/provider"
)

var _ provider.Lister = (*Provider)(nil)

// List implements provider.Lister: every key held now that starts with
// prefix. Each shard is read under its own lock, so the list is consistent
// per key, not across keys.
func (p *Provider) List(ctx context.Context, prefix string) ([]provider.Entry, error) {
	if p.closed.Load() {
		return nil, provider.ErrClosed
	}
	var out []provider.Entry
	for i := range p.shards {
		if err := ctx.Err(); err != nil {
			return nil, provider.Unavailable(err)
		}
		s := &p.shards[i]
		s.mu.Lock()
		now := p.now()
		for key := range s.locks {
			if !strings.HasPrefix(key, prefix) {
				continue
			}
			if e, held := s.settle(key, now); held {
				out = append(out, provider.Entry{Key: key, State: provider.State{
					Held: true, Token: e.token, Fence: e.fence, TTL: time.Duration(e.expires - now),
				}})
			}
		}
		s.mu.Unlock()
	}
	return out, nil
}
