package redisprovider_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

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
	if err != nil || len(res) < 2 || len(res) > 3 {
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

// TestScriptHandoff: the release hands the key to the first queued waiter
// that a PUBLISH on its instance channel reaches, with the next fence, its
// call's nonce and TTL; it skips one that nobody listens for (the fence
// number stays unused) and, when nobody takes the key, drops the skipped
// ones and wakes the head. The handed call's next try finds the hold; its
// give-up frees it.
func TestScriptHandoff(t *testing.T) {
	r := newScriptRig(t)
	channel := "wake-" + r.key
	sub := r.c.Subscribe(r.ctx, channel+":i1", channel)
	t.Cleanup(func() { _ = sub.Close() })
	for range 2 { // both subscriptions are confirmed
		if _, err := sub.Receive(r.ctx); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() string {
		t.Helper()
		m, err := sub.ReceiveMessage(r.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return m.Channel + " " + m.Payload
	}
	wait := func(token, nonce, instance string, seq int) string {
		t.Helper()
		res, err := redisprovider.RunWaitScript(r.ctx, r.c, r.key, token, 60000, 60000, nonce, instance, seq)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(res)
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
		if err == redis.Nil {
			return "(free)"
		}
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	r.want("h", r.acquire("h", "n0", false), "granted 1")
	r.want("b (instance i2: nobody listens) joins", wait("b", "nb", "i2", 0)[:3], "[0 ")
	r.want("a (instance i1) joins", wait("a", "na", "i1", 0)[:3], "[0 ")
	r.want("c (instance i1) joins", wait("c", "nc", "i1", 0)[:3], "[0 ")
	r.want("a tries again, still refused", wait("a", "na", "i1", 1)[:3], "[0 ")
	release("h")
	// Fence 2 went to b's unheard handoff; a's try number 1 is the last.
	got := recv()
	var elapsed int
	if _, err := fmt.Sscanf(got, channel+":i1 3 %d 1 na 1:a", &elapsed); err != nil || !strings.HasSuffix(got, "1:a"+r.key) || elapsed < 0 {
		t.Fatalf("handoff message = %q (%v); want fence 3, elapsed ms, try 1, nonce na, token a, key", got, err)
	}
	r.want("a's hold", value(), "3 na+ a")
	if got, want := r.queue(), []string{"b", "c"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("queue after the handoff = %v, want %v (b skipped, keeping its place)", got, want)
	}
	lock, _, _, alive := redisprovider.KeysOf(r.key)
	if pttl, err := r.c.PTTL(r.ctx, lock).Result(); err != nil || pttl.Milliseconds() <= 55000 || pttl.Milliseconds() > 60000 {
		t.Fatalf("handed hold PTTL = %v, %v; want a's 60 s", pttl, err)
	}
	if ok, err := r.c.HExists(r.ctx, alive, "a").Result(); err != nil || ok {
		t.Fatalf("a's waiter entry after the handoff: %v, %v", ok, err)
	}
	res, err := redisprovider.RunWaitScript(r.ctx, r.c, r.key, "a", 60000, 60000, "na", "i1", 2)
	if err != nil || len(res) != 3 || res[0] != int64(1) || res[1] != "3" {
		t.Fatalf("a's next try = %v, %v; want {1, 3, pttl}: the handed hold", res, err)
	}
	r.want("a's fresh call (another nonce)", wait("a", "na2", "i1", 0)[:3], "[0 ")
	r.giveUp("a", "na2", false)
	r.want("a's hold after the give-up of another call", value(), "3 na+ a")
	r.giveUp("a", "na", false) // a's call will not use it
	r.want("lock after a's give-up", value(), "(free)")
	r.want("wake-up after a's give-up", recv(), channel+" 1:b"+r.key)

	// b is the head of a free key: c waits; c takes no handoff now.
	r.want("c, not the head", wait("c", "nc", "", 1)[:3], "[0 ")
	r.want("b takes it", r.acquire("b", "nb", true), "granted 4")
	release("b")
	// c's entry names no instance: it is woken, and takes it by a try.
	r.want("wake-up for c", recv(), channel+" 1:c"+r.key)
	_, _, queueKey, _ := redisprovider.KeysOf(r.key)
	if got, want := r.queue(), []string{"c"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("queue after b's release = %v, want %v", got, want)
	}
	if pttl, err := r.c.PTTL(r.ctx, queueKey).Result(); err != nil || pttl <= 0 || pttl > time.Minute {
		t.Fatalf("queue PTTL = %v, %v; want c's deadline, about a minute", pttl, err)
	}
	r.want("c takes it", r.acquire("c", "nc", true), "granted 5")

	r.want("d (instance i2: nobody listens) joins", wait("d", "nd", "i2", 0)[:3], "[0 ")
	release("c")
	if got := r.queue(); len(got) != 0 {
		t.Fatalf("queue = %v after a release that nobody took; want d dropped", got)
	}
	r.want("lock after nobody took it", value(), "(free)")
	r.want("a newcomer", r.acquire("e", "ne", false), "granted 7")
}

// TestScriptHoldWritersAgree: acquire.lua writes a hold in two places, its
// fast path (free key, no waiter hash) and after hold.lua's functions
// (here forced by a tombstone in the waiter hash); both write the same
// "<fence> <nonce> <token>" string (hold.lua's hold_value).
func TestScriptHoldWritersAgree(t *testing.T) {
	r := newScriptRig(t)
	lock, _, _, _ := redisprovider.KeysOf(r.key)
	hold := func() string {
		v, err := r.c.Get(r.ctx, lock).Result()
		if err != nil {
			r.t.Fatal(err)
		}
		return v
	}
	r.want("fast path", r.acquire("tok a", "n1", false), "granted 1")
	r.want("fast path's hold", hold(), "1 n1 tok a")
	if _, err := redisprovider.RunReleaseScript(r.ctx, r.c, r.key, "tok a", "wake-"+r.key); err != nil {
		t.Fatal(err)
	}
	r.giveUp("tok b", "lost", true) // a tombstone: the next acquire takes the slow path
	if r.tombs() == "" {
		t.Fatal("no tombstone: the next acquire would not take the slow path")
	}
	r.want("slow path", r.acquire("tok a", "n2", false), "granted 2")
	r.want("slow path's hold", hold(), "2 n2 tok a")
}
