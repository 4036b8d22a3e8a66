package redisprovider

import (
	"context"
	_ "embed"
	"fmt"

	"github.com/lockproof/lockproof/provider"
)

var (
	//go:embed scripts/migrate_fence.lua
	migrateFenceSrc    string
	migrateFenceScript = holdScript(migrateFenceSrc)
)

// MigrateFences moves the fence counters that lockproof wrote before fence
// counters were shared per hash slot (one key "<prefix>{K}:fence" per key
// ever locked) into the counter of their slot, so that fences continue
// above the ones stores have kept, and deletes them. It returns how many
// it moved. Run it once after upgrading from a version with per-key
// counters: until it has run, a key's new fences may be lower than its old
// ones, and a fenced store refuses those holders with ErrStale (safe, but
// stuck). It only ever raises counters, so it may run while locks are
// taken, and running it again moves nothing. Like List, it SCANs the
// provider's prefix (every master of a Cluster).
//
// Errors: provider.ErrClosed; provider.ErrUnavailable if the scan failed
// (nothing moved by this call is lost: a partial run can be repeated); the
// Provider's StoreError classes for a move.
func (p *Provider) MigrateFences(ctx context.Context) (int, error) {
	if p.closed.Load() {
		return 0, provider.ErrClosed
	}
	keys, err := p.scanKeys(ctx, "", ":fence")
	if err != nil {
		return 0, err
	}
	moved := 0
	for _, key := range keys {
		lock, counter, _, _ := p.keys(key)
		n, err := migrateFenceScript.Run(ctx, p.c, []string{lock + ":fence", counter}).Int64()
		if err != nil {
			return moved, fmt.Errorf("migrate fence counter of %q: %w", key, p.StoreError(ctx, err))
		}
		moved += int(n)
	}
	return moved, nil
}
