package redisprovider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/provider"
)

var (
	_ provider.Lister = (*Provider)(nil)
	_ provider.Lister = (*Redlock)(nil)
)

// scanCount is the COUNT hint of each SCAN step in List.
const scanCount = 1000

// List implements provider.Lister. It SCANs the provider's prefix (on a
// Cluster, every master), keeps the lock keys (not fence counters, queues
// or records kept beside them) of keys that start with prefix, and reads
// each one's state: one round trip per held key, so the cost is linear in
// the keys under the provider's prefix and falls on the admin call only.
// No index is written at acquire time, so there is no stale entry to clean
// up: a hold that expired is simply not found. See docs/decisions.md.
func (p *Provider) List(ctx context.Context, prefix string) ([]provider.Entry, error) {
	if p.closed.Load() {
		return nil, provider.ErrClosed
	}
	keys, err := p.scanKeys(ctx, prefix, "")
	if err != nil {
		return nil, err
	}
	out := make([]provider.Entry, 0, len(keys))
	for _, key := range keys {
		st, err := p.State(ctx, key)
		if err != nil {
			return nil, err
		}
		if st.Held {
			out = append(out, provider.Entry{Key: key, State: st})
		}
	}
	return out, nil
}

// KeysWith returns, in no particular order, the keys K that start with
// prefix and whose data key DataKey(K, name) exists now; with name "" the
// keys held (their lock key exists). A store that keeps records beside the
// locks lists them this way (redisrepo: name "entity"). It SCANs the
// provider's prefix (every master on a Cluster), so its cost is linear in
// the Redis keys under it; it is for listings and admin tools, not for the
// request path.
func (p *Provider) KeysWith(ctx context.Context, prefix, name string) ([]string, error) {
	if p.closed.Load() {
		return nil, provider.ErrClosed
	}
	suffix := ""
	if name != "" {
		suffix = ":" + name
	}
	return p.scanKeys(ctx, prefix, suffix)
}

func (p *Provider) scanKeys(ctx context.Context, prefix, suffix string) ([]string, error) {
	pattern := globEscape(p.prefix) + "{*" + globEscape(suffix)
	var (
		mu   sync.Mutex
		keys []string
	)
	scan := func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, pattern, scanCount).Iterator()
		for it.Next(ctx) {
			name, ok := strings.CutSuffix(it.Val(), suffix)
			if !ok {
				continue
			}
			if key, ok := p.lockKeyOf(name); ok && strings.HasPrefix(key, prefix) {
				mu.Lock()
				keys = append(keys, key)
				mu.Unlock()
			}
		}
		return it.Err()
	}
	var err error
	if cc, ok := p.c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, p.c)
	}
	if err != nil {
		if errors.Is(err, provider.ErrClosed) {
			return nil, err
		}
		return nil, provider.Unavailable(fmt.Errorf("scan: %w", err))
	}
	return keys, nil
}

// lockKeyOf returns the key whose lock is the Redis key rk, if rk is a lock
// key of this provider (and not a fence, queue or a record beside a lock).
func (p *Provider) lockKeyOf(rk string) (string, bool) {
	rest, ok := strings.CutPrefix(rk, p.prefix)
	if !ok || !strings.HasPrefix(rest, "{") {
		return "", false
	}
	var key string
	if strings.HasPrefix(rest, "{#") { // a key with braces: "{#hash}key"
		i := strings.IndexByte(rest, '}')
		if i < 0 {
			return "", false
		}
		key = rest[i+1:]
	} else {
		key, ok = strings.CutSuffix(rest[1:], "}")
		if !ok {
			return "", false
		}
	}
	if key == "" {
		return "", false
	}
	if lock, _, _, _ := p.keys(key); lock != rk {
		return "", false
	}
	return key, true
}

// globEscape escapes the characters SCAN MATCH treats as a pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// List implements provider.Lister: the union of the nodes' lists, each key
// then read with State, so only keys a majority agrees on are reported. A
// key held on a majority is on at least one of any majority of nodes, so
// the list is complete as long as a majority answers; otherwise the error
// matches ErrUnavailable.
func (r *Redlock) List(ctx context.Context, prefix string) ([]provider.Entry, error) {
	if r.closed.Load() {
		return nil, provider.ErrClosed
	}
	seen := make(map[string]bool)
	var errs []error
	for _, n := range r.nodes {
		keys, err := n.scanKeys(ctx, prefix, "")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, k := range keys {
			seen[k] = true
		}
	}
	if len(r.nodes)-len(errs) < r.quorum {
		return nil, provider.Unavailable(errors.Join(errs...))
	}
	out := make([]provider.Entry, 0, len(seen))
	for key := range seen {
		st, err := r.State(ctx, key)
		if err != nil {
			return nil, err
		}
		if st.Held {
			out = append(out, provider.Entry{Key: key, State: st})
		}
	}
	return out, nil
}
