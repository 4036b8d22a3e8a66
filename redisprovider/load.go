package redisprovider

import (
	"context"
	_ "embed"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/provider"
)

// Lock and load: an acquire whose context carries a HashRead of this
// Provider for its key runs loadScript instead of acquireScript: the same
// acquire, plus an HGET of the record when it grants, in one script and one
// round trip. The acquire is not copied: loadScript is built here from
// acquire.lua's source, so a change to the acquire script is a change to
// both.

var (
	//go:embed scripts/load.lua
	loadSrc string

	loadScript = redis.NewScript(loadSource(acquireSrc))
)

// loadSource is scripts/load.lua with acquire (as holdScript composes it)
// in place of its line "--#acquire": the body of a Lua function, whose
// returns become the function's. A first line "#!lua ..." (script flags)
// is kept first.
func loadSource(acquire string) string {
	shebang := ""
	if strings.HasPrefix(acquire, "#!") {
		line, rest, _ := strings.Cut(acquire, "\n")
		shebang, acquire = line+"\n", rest
	}
	body := holdSource(acquire)
	before, after, ok := strings.Cut(loadSrc, "\n--#acquire\n")
	if !ok {
		panic(`redisprovider: scripts/load.lua lacks its "--#acquire" line`)
	}
	return shebang + before + "\n" + body + "\n" + after
}

// A HashRead is a provider.Read of one field of a hash that a store keeps
// beside a lock (at a DataKey of it, so in the lock's Cluster slot): a
// TryAcquire or Acquire of the lock by the Provider that made it, whose
// context carries it (provider.WithReads), runs the acquire and, if it
// grants, the HGET in one script, one round trip (scripts/load.lua). In a
// waiting Acquire the read runs in the try that grants. Another Provider,
// or a call on another key, ignores it. Create one with Provider.HashRead;
// it is for one acquire call at a time.
type HashRead struct {
	p           *Provider
	key         string // the lock key, as the provider sees it
	hash, field string

	// Set by the grant that carried the read.
	token string
	fence uint64 // 0: no grant carried it
	data  []byte
	err   error
}

var _ provider.Read = (*HashRead)(nil)

// HashRead returns a read of field of the hash at DataKey(key, name), for
// the grant of key (as the provider sees it, namespace included).
func (p *Provider) HashRead(key, name, field string) *HashRead {
	return &HashRead{p: p, key: key, hash: p.DataKey(key, name), field: field}
}

// Key implements provider.Read.
func (r *HashRead) Key() string { return r.key }

// Granted implements provider.Read.
func (r *HashRead) Granted(token string, fence uint64) bool {
	return r.fence != 0 && r.fence == fence && r.token == token
}

// Result returns the field's value as the grant read it, in go-redis's
// terms: redis.Nil if the hash or the field is missing, an error that is a
// redis.Error (Redis's WRONGTYPE reply) if the key holds a value of another
// type, which the read left as it is. Before a grant carried the read
// (Granted), it returns an error saying so.
func (r *HashRead) Result() ([]byte, error) {
	if r.fence == 0 {
		return nil, fmt.Errorf("redisprovider: read of %q: no grant carried it", r.hash)
	}
	return r.data, r.err
}

// replyError is an error reply of Redis that a script caught: a redis.Error.
type replyError string

func (e replyError) Error() string { return string(e) }

// RedisError marks replyError as a redis.Error.
func (replyError) RedisError() {}

// runAcquire runs the acquire script for one try of token on key with keys
// and args (acquireArgs), and returns its reply. If ctx carries a HashRead
// of p for key, it runs the lock-and-load script instead, and records in
// the HashRead what a grant read.
func (p *Provider) runAcquire(ctx context.Context, key, token string, keys []string, args []any) ([]any, error) {
	rd, _ := provider.ReadOf(ctx, key).(*HashRead)
	if rd == nil || rd.p != p {
		return runScript(ctx, p.c, acquireSha, keys, args).Slice()
	}
	res, err := loadScript.Run(ctx, p.c, append(keys, rd.hash), append(args, rd.field)...).Slice()
	if err != nil || len(res) == 0 {
		return res, err
	}
	reply, _ := res[0].([]any)
	if len(res) >= 2 && len(reply) >= 2 {
		if ok, _ := reply[0].(int64); ok == 1 {
			if f, ok := parseFence(reply[1]); ok {
				rd.grant(token, f, res[1:])
			}
		}
	}
	return reply, nil
}

// grant records what the grant of token with fence read: rest is what
// load.lua returned after the acquire's reply.
func (r *HashRead) grant(token string, fence uint64, rest []any) {
	r.data, r.err = nil, redis.Nil
	code, _ := rest[0].(int64)
	switch {
	case code == 1 && len(rest) == 2:
		s, ok := rest[1].(string)
		if !ok {
			return // not a grant this code understands: no read
		}
		r.data, r.err = []byte(s), nil
	case code == -1 && len(rest) == 2:
		msg, _ := rest[1].(string)
		r.err = replyError(msg)
	case code != 0:
		return
	}
	r.token, r.fence = token, fence
}
