package redisprovider_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/redisprovider"
)

// scriptRig runs the acquire and give-up scripts directly on one key.
type scriptRig struct {
	t   *testing.T
	ctx context.Context
	c   *redis.Client
	key string
}

func newScriptRig(t *testing.T) *scriptRig {
	t.Parallel()
	node := redistest.Server(t)
	return &scriptRig{t: t, ctx: bounded(t, testBound), c: node.Client(t), key: uniqueKey(t, "k")}
}

// acquire returns "granted <fence>", "refused 0" (a tombstone) or
// "refused wait".
func (r *scriptRig) acquire(token, nonce string, join bool) string {
	r.t.Helper()
	res, err := redisprovider.RunAcquireScript(r.ctx, r.c, r.key, token, 60000, join, 60000, nonce)
	if err != nil || len(res) != 2 {
		r.t.Fatalf("acquire %s/%s = %v, %v", token, nonce, res, err)
	}
	if res[0] == int64(1) {
		return fmt.Sprint("granted ", res[1])
	}
	if ms, _ := res[1].(int64); ms > 0 {
		return "refused wait" // the holder's TTL or the head's deadline
	}
	return fmt.Sprint("refused ", res[1])
}

func (r *scriptRig) giveUp(token, nonce string, lost bool) {
	r.t.Helper()
	if err := redisprovider.RunGiveUpScript(r.ctx, r.c, r.key, token, "wake-"+r.key, lost, 60000, nonce); err != nil {
		r.t.Fatalf("give-up %s/%s: %v", token, nonce, err)
	}
}

func (r *scriptRig) tombs() string {
	r.t.Helper()
	_, _, _, alive := redisprovider.KeysOf(r.key)
	v, err := r.c.HGet(r.ctx, alive, "").Result()
	if err == redis.Nil {
		return ""
	}
	if err != nil {
		r.t.Fatal(err)
	}
	return v
}

func (r *scriptRig) queue() []string {
	r.t.Helper()
	_, _, queue, _ := redisprovider.KeysOf(r.key)
	q, err := r.c.LRange(r.ctx, queue, 0, -1).Result()
	if err != nil {
		r.t.Fatal(err)
	}
	return q
}

func (r *scriptRig) want(what, got, want string) {
	r.t.Helper()
	if got != want {
		r.t.Fatalf("%s = %q, want %q", what, got, want)
	}
}

// TestScriptTombstone: a give-up that runs before its lost try leaves a
// tombstone in the waiter hash; the late try then refuses and removes it,
// and the key is free for the next acquire's fast path.
func TestScriptTombstone(t *testing.T) {
	r := newScriptRig(t)
	r.giveUp("a", "n1", true)
	r.giveUp("a", "n1", true) // a re-run adds nothing
	r.giveUp("a", "n2", true) // a second lost try of the same token
	if got := r.tombs(); got == "" {
		t.Fatal("no tombstone after the give-up")
	}
	r.want("late try n1", r.acquire("a", "n1", false), "refused 0")
	r.want("late try n2", r.acquire("a", "n2", true), "refused 0")
	r.want("tombstones after both late tries", r.tombs(), "")
	_, _, _, alive := redisprovider.KeysOf(r.key)
	if n, err := r.c.Exists(r.ctx, alive).Result(); err != nil || n != 0 {
		t.Fatalf("waiter hash exists = %d, %v after its last tombstone went", n, err)
	}
	r.want("a fresh try of the same token", r.acquire("a", "n3", false), "granted 1")
	r.want("its re-send", r.acquire("a", "n3", false), "granted 1")
	r.want("another request of the holder", r.acquire("a", "n4", false), "refused wait")
}

// TestScriptTombstoneLapses: the give-up drops tombstones whose time has
// passed, keeps the live ones, and raises the hash's expiry to cover its
// own.
func TestScriptTombstoneLapses(t *testing.T) {
	r := newScriptRig(t)
	_, _, _, alive := redisprovider.KeysOf(r.key)
	if err := r.c.HSet(r.ctx, alive, "", " old:1").Err(); err != nil {
		t.Fatal(err)
	}
	r.giveUp("a", "n1", true)
	tombs := r.tombs()
	var ms int64
	if _, err := fmt.Sscanf(tombs, " n1:%d", &ms); err != nil || ms <= 1 {
		t.Fatalf("tombstones = %q, want only n1's with its time", tombs)
	}
	if ttl, err := r.c.PTTL(r.ctx, alive).Result(); err != nil || ttl.Milliseconds() < 50000 {
		t.Fatalf("waiter hash TTL = %v, %v: want about the lost try's 60 s", ttl, err)
	}
	r.want("late try of the lapsed tombstone", r.acquire("b", "old", false), "granted 1")
}

// TestScriptTombstoneKeepsOrder: tombstones beside a queue neither count as
// waiters nor let anyone barge, and a waiter whose deadline outlived its
// queue (the hash outlives the queue for its tombstones) is queued again.
func TestScriptTombstoneKeepsOrder(t *testing.T) {
	r := newScriptRig(t)
	r.want("holder", r.acquire("h", "n0", false), "granted 1")
	r.giveUp("x", "nx", true) // x's lost try, which never took the key
	// A deadline left from a queue that expired: w stopped trying for a
	// while, and its queue lapsed, but the hash stayed for the tombstone.
	_, _, _, alive := redisprovider.KeysOf(r.key)
	if err := r.c.HSet(r.ctx, alive, "w", 1).Err(); err != nil {
		t.Fatal(err)
	}
	r.want("u joins", r.acquire("u", "nu", true), "refused wait")
	r.want("w joins again", r.acquire("w", "nw", true), "refused wait")
	if got, want := r.queue(), []string{"u", "w"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("queue = %v, want %v", got, want)
	}
	if r.tombs() == "" {
		t.Fatal("the new queue dropped x's tombstone")
	}
	lock, _, _, _ := redisprovider.KeysOf(r.key)
	if err := r.c.Del(r.ctx, lock).Err(); err != nil { // h's hold lapses
		t.Fatal(err)
	}
	r.want("x's late try", r.acquire("x", "nx", false), "refused 0")
	r.want("y barging in front of the queue", r.acquire("y", "ny", false), "refused wait")
	r.want("w, not the head", r.acquire("w", "nw2", true), "refused wait")
	r.want("u, the head", r.acquire("u", "nu2", true), "granted 2")
	if got, want := r.queue(), []string{"w"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("queue after u's grant = %v, want %v", got, want)
	}
}

// TestScriptWakesOnlyWhenWaited: a release publishes a wake-up only when
// the hold says someone may wait (a waiter joined during it, or the head
// took it), and that mark does not hide a re-sent acquire or a give-up.
func TestScriptWakesOnlyWhenWaited(t *testing.T) {
	r := newScriptRig(t)
	channel := "wake-" + r.key // as giveUp publishes
	sub := r.c.Subscribe(r.ctx, channel)
	t.Cleanup(func() { _ = sub.Close() })
	if _, err := sub.Receive(r.ctx); err != nil { // the subscription is confirmed
		t.Fatal(err)
	}
	// next returns the next message; a marker published after the release
	// stands for "nothing was published before it".
	next := func() string {
		t.Helper()
		if err := r.c.Publish(r.ctx, channel, "(none)").Err(); err != nil {
			t.Fatal(err)
		}
		m, err := sub.ReceiveMessage(r.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Payload != "(none)" {
			if m2, err := sub.ReceiveMessage(r.ctx); err != nil || m2.Payload != "(none)" {
				t.Fatalf("after %q: %v, %v", m.Payload, m2, err)
			}
		}
		return m.Payload
	}
	release := func(token string) {
		t.Helper()
		if n, err := redisprovider.RunReleaseScript(r.ctx, r.c, r.key, token, channel); err != nil || n != 1 {
			t.Fatalf("release %s = %d, %v", token, n, err)
		}
	}
	lock, _, _, _ := redisprovider.KeysOf(r.key)
	value := func() string {
		t.Helper()
		v, err := r.c.Get(r.ctx, lock).Result()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	r.want("h", r.acquire("h", "n1", false), "granted 1")
	r.want("h's hold", value(), "1 n1 h")
	release("h")
	r.want("wake-up after a release nobody waited for", next(), "(none)")

	r.want("h again", r.acquire("h", "n2", false), "granted 2")
	r.want("w joins", r.acquire("w", "n3", true), "refused wait")
	r.want("h's hold after w joined", value(), "2 n2+ h")
	r.want("h's re-sent acquire", r.acquire("h", "n2", false), "granted 2")
	release("h")
	r.want("wake-up after h's release", next(), "1:w"+r.key)

	r.want("u joins the reserved key", r.acquire("u", "n4", true), "refused wait")
	r.want("w, the head", r.acquire("w", "n5", true), "granted 3")
	r.want("w's hold", value(), "3 n5+ w")
	r.giveUp("w", "n5", true) // w's try was lost: the give-up frees it and wakes u
	r.want("wake-up after w's give-up", next(), "1:u"+r.key)
	r.want("u, the head", r.acquire("u", "n6", true), "granted 4")
	r.want("u's hold (it took the head's turn)", value(), "4 n6+ u")
	release("u")
	r.want("wake-up after u's release, queue empty", next(), "(none)")
}
