package redisprovider_test

// Lock and load: HashRead runs with the grant, in one script built from
// the acquire script, one round trip; other reads are ignored; the outcome
// classes and the undo of a lost acquire are the acquire's.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/redisprovider"
)

// loggedClient returns a client of node that records its commands.
func loggedClient(t *testing.T, node *redistest.Node) (*redis.Client, *redistest.CommandLog) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: node.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	log := redistest.LogCommands(c)
	return c, log
}

// TestLoadScriptWrapsAcquire: the lock-and-load script is load.lua around
// the acquire script's own composed text, exactly once, so that a change
// to acquire.lua is a change to lock and load; a script-flags line stays
// first.
func TestLoadScriptWrapsAcquire(t *testing.T) {
	src, acq := redisprovider.LoadScriptSource(), redisprovider.AcquireSource()
	if n := strings.Count(src, acq); n != 1 {
		t.Fatalf("the load script holds the acquire script %d times, want 1", n)
	}
	if !strings.Contains(src, "local function acquire()\n"+acq+"\nend\n") {
		t.Fatal("the acquire script is not the body of acquire()")
	}
	if strings.Contains(src, "\n--#acquire\n") || strings.Contains(src, "\n--#hold\n") {
		t.Fatal("a composition marker was left in the load script")
	}
	got := redisprovider.LoadSource("#!lua flags=allow-cross-slot-keys\nreturn {0, 1}\n")
	if !strings.HasPrefix(got, "#!lua flags=allow-cross-slot-keys\n") || strings.Count(got, "#!lua") != 1 {
		t.Fatalf("the flags line is not first, once:\n%s", got)
	}
}

// TestLoadScriptFollowsAcquire runs the load script built from another
// acquire script, which reads an ARGV after the five of today's and
// returns a grant: the record key and field stay last, whatever the
// acquire script's KEYS and ARGV, and the read follows its grant.
func TestLoadScriptFollowsAcquire(t *testing.T) {
	t.Parallel()
	c := redistest.Server(t).Client(t)
	ctx := bounded(t, testBound)
	script := redis.NewScript(redisprovider.LoadSource(
		"if ARGV[6] == 'grant' then return {1, KEYS[5]} end\nreturn {0, 5}\n"))
	if err := c.HSet(ctx, "rec", "d", "value").Err(); err != nil {
		t.Fatal(err)
	}
	keys := []string{"l", "f", "q", "a", "extra", "rec"}
	for _, tc := range []struct {
		arg  string
		want string
	}{
		{"grant", "[[1 extra] 1 value]"},
		{"no", "[[0 5]]"},
	} {
		res, err := script.Run(ctx, c, keys, "tok", 1000, 0, 3000, "nonce", tc.arg, "d").Slice()
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(res); got != tc.want {
			t.Errorf("ARGV[6] %q: reply %s, want %s", tc.arg, got, tc.want)
		}
	}
}

// TestHashRead: a TryAcquire whose context carries the provider's
// HashRead for its key reads the record with the grant in one round trip;
// a missing record or field reads as redis.Nil; a record key of another
// type is a WRONGTYPE error of the read while the grant stands; a refused
// acquire reads nothing; a read of another Provider or another key is
// ignored.
func TestHashRead(t *testing.T) {
	t.Parallel()
	node := redistest.Server(t)
	c, log := loggedClient(t, node)
	p := newProvider(t, c, nil)
	ctx := bounded(t, testBound)

	warm := uniqueKey(t, "warm") // caches the script: later calls are one EVALSHA
	if _, err := p.TryAcquire(provider.WithReads(ctx, p.HashRead(warm, "entity", "d")), warm, "tok", longTTL); err != nil {
		t.Fatal(err)
	}

	try := func(t *testing.T, key string, rd provider.Read) (provider.Grant, string, error) {
		t.Helper()
		log.Take()
		tok := "tok-" + uuid.NewString()
		g, err := p.TryAcquire(provider.WithReads(ctx, rd), key, tok, longTTL)
		if cmds := log.Take(); len(cmds) != 1 || cmds[0] != "evalsha" {
			t.Fatalf("TryAcquire sent %v, want one EVALSHA", cmds)
		}
		return g, tok, err
	}

	t.Run("Found", func(t *testing.T) {
		key := uniqueKey(t, "k")
		if err := c.HSet(ctx, p.DataKey(key, "entity"), "d", "v1", "f", "0").Err(); err != nil {
			t.Fatal(err)
		}
		rd := p.HashRead(key, "entity", "d")
		g, tok, err := try(t, key, rd)
		if err != nil {
			t.Fatal(err)
		}
		if !rd.Granted(tok, g.Fence) || rd.Granted("other", g.Fence) || rd.Granted(tok, g.Fence+1) {
			t.Fatal("Granted does not name exactly the grant that carried the read")
		}
		if data, err := rd.Result(); err != nil || string(data) != "v1" {
			t.Fatalf("Result = %q, %v, want v1", data, err)
		}
	})
	t.Run("Missing", func(t *testing.T) {
		key := uniqueKey(t, "k")
		if err := c.HSet(ctx, p.DataKey(key, "other"), "d", "v1").Err(); err != nil {
			t.Fatal(err)
		}
		for _, rd := range []*redisprovider.HashRead{p.HashRead(key, "entity", "d"), p.HashRead(key, "other", "x")} {
			if rd.Key() != key {
				t.Fatal("HashRead.Key is not the lock key")
			}
			g, tok, err := try(t, key, rd)
			if err != nil {
				t.Fatal(err)
			}
			if !rd.Granted(tok, g.Fence) {
				t.Fatal("not granted")
			}
			if _, err := rd.Result(); !errors.Is(err, redis.Nil) {
				t.Fatalf("Result of a missing record = %v, want redis.Nil", err)
			}
			if err := p.Release(ctx, key, tok); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("WrongType", func(t *testing.T) {
		key := uniqueKey(t, "k")
		if err := c.Set(ctx, p.DataKey(key, "entity"), "a string", 0).Err(); err != nil {
			t.Fatal(err)
		}
		rd := p.HashRead(key, "entity", "d")
		g, tok, err := try(t, key, rd)
		if err != nil {
			t.Fatalf("TryAcquire = %v: the grant is written before the read, so it must be reported", err)
		}
		var re redis.Error
		if _, err := rd.Result(); !errors.As(err, &re) || !strings.HasPrefix(err.Error(), "WRONGTYPE") || !rd.Granted(tok, g.Fence) {
			t.Fatalf("Result = %v, want a WRONGTYPE redis.Error", err)
		}
		if st, err := p.State(ctx, key); err != nil || st.Token != tok {
			t.Fatalf("State = %+v, %v: the grant does not stand", st, err)
		}
	})
	t.Run("Refused", func(t *testing.T) {
		key := uniqueKey(t, "k")
		if _, err := p.TryAcquire(ctx, key, "holder", longTTL); err != nil {
			t.Fatal(err)
		}
		rd := p.HashRead(key, "entity", "d")
		_, tok, err := try(t, key, rd)
		wantErr(t, "TryAcquire of a held key", err, provider.ErrNotAcquired)
		if rd.Granted(tok, 1) || rd.Granted("holder", 1) {
			t.Fatal("a refused acquire reports a read")
		}
		if _, err := rd.Result(); err == nil {
			t.Fatal("Result of a read no grant carried = nil error")
		}
	})
	t.Run("Ignored", func(t *testing.T) {
		other := newProvider(t, c, nil) // same client and prefix: another Provider
		key := uniqueKey(t, "k")
		for name, rd := range map[string]*redisprovider.HashRead{
			"another Provider's": other.HashRead(key, "entity", "d"),
			"another key's":      p.HashRead(key+"x", "entity", "d"),
		} {
			log.Take()
			tok := "tok-" + uuid.NewString()
			g, err := p.TryAcquire(provider.WithReads(ctx, rd), key, tok, longTTL)
			if err != nil {
				t.Fatal(err)
			}
			if rd.Granted(tok, g.Fence) {
				t.Fatalf("%s read ran", name)
			}
			if err := p.Release(ctx, key, tok); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestHashReadWaiting: in a waiting Acquire the read runs in the try that
// grants, after the holder's last write, not in the first, refused try.
func TestHashReadWaiting(t *testing.T) {
	t.Parallel()
	node := redistest.Server(t)
	c := node.Client(t)
	p := newProvider(t, c, &redisprovider.Options{PollInterval: 100 * time.Millisecond})
	ctx := bounded(t, testBound)
	key := uniqueKey(t, "k")
	rec := p.DataKey(key, "entity")
	if err := c.HSet(ctx, rec, "d", "before").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.TryAcquire(ctx, key, "holder", longTTL); err != nil {
		t.Fatal(err)
	}
	rd := p.HashRead(key, "entity", "d")
	type result struct {
		g   provider.Grant
		err error
	}
	done := make(chan result, 1)
	go func() {
		g, err := p.Acquire(provider.WithReads(ctx, rd), key, "waiter", longTTL)
		done <- result{g, err}
	}()
	_, _, queue, _ := redisprovider.KeysOf(key)
	eventually(t, "the waiter is queued", faultBound, func() error {
		if n, err := c.LLen(ctx, queue).Result(); err != nil || n != 1 {
			return errors.New("not queued yet")
		}
		return nil
	})
	if err := c.HSet(ctx, rec, "d", "after").Err(); err != nil { // the holder's last write
		t.Fatal(err)
	}
	if err := p.Release(ctx, key, "holder"); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	data, err := rd.Result()
	if err != nil || string(data) != "after" || !rd.Granted("waiter", r.g.Fence) {
		t.Fatalf("Result = %q, %v, want the record as of the grant (after)", data, err)
	}
}

// TestHashReadOutcomes: with a read in ctx, a lost reply that go-redis
// re-sends still grants and reads (the re-execution returns the same hold
// and reads); a dropped reply or request is ErrOutcomeUnknown with no read
// reported, and the give-up undoes any hold it took.
func TestHashReadOutcomes(t *testing.T) {
	t.Parallel()
	px := newProxied(t)
	p := newProvider(t, px.c, &redisprovider.Options{PollInterval: 100 * time.Millisecond})
	ctx := bounded(t, testBound)
	warm := uniqueKey(t, "warm")
	if _, err := p.TryAcquire(provider.WithReads(ctx, p.HashRead(warm, "entity", "d")), warm, "tok", longTTL); err != nil {
		t.Fatal(err)
	}
	for _, f := range faults[:3] { // ReplyLostThenResent, ReplyDropped, RequestDropped
		t.Run(f.name, func(t *testing.T) {
			key, tok := uniqueKey(t, "k"), "tok-"+uuid.NewString()
			if err := px.admin.HSet(ctx, p.DataKey(key, "entity"), "d", "v").Err(); err != nil {
				t.Fatal(err)
			}
			if err := px.c.Ping(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			fired := px.proxy.Fired()
			for _, r := range f.rule(key) {
				px.proxy.Set(r)
			}
			cctx, cancel := context.WithTimeout(ctx, faultBound)
			if f.want == wantUnknown {
				cancel()
				cctx, cancel = context.WithTimeout(ctx, faultCtx)
			}
			rd := p.HashRead(key, "entity", "d")
			g, err := p.TryAcquire(provider.WithReads(cctx, rd), key, tok, longTTL)
			cancel()
			px.proxy.Clear()
			if px.proxy.Fired() == fired {
				t.Fatalf("the fault did not fire (err %v)", err)
			}
			if f.want == wantSuccess {
				if err != nil {
					t.Fatalf("TryAcquire after a lost reply that go-redis re-sent = %v, want success", err)
				}
				if data, err := rd.Result(); err != nil || string(data) != "v" || !rd.Granted(tok, g.Fence) {
					t.Fatalf("Result = %q, %v after the re-sent grant, want v", data, err)
				}
				return
			}
			wantErr(t, "TryAcquire", err, provider.ErrOutcomeUnknown)
			if errors.Is(err, provider.ErrNotAcquired) {
				t.Fatalf("TryAcquire = %v: a definite answer for an unknown outcome", err)
			}
			if _, rerr := rd.Result(); rerr == nil {
				t.Fatal("a read is reported for an acquire whose outcome is unknown")
			}
			eventually(t, "the give-up undid the hold", faultBound, func() error {
				if st := adminState(t, px.admin, key); st.Held && st.Token == tok {
					return errors.New("still held by the lost try")
				}
				return nil
			})
		})
	}
}
