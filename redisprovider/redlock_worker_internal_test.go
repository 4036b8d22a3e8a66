package redisprovider

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/internal/redistest"
)

// batchOf returns n requests of the state script on key k<i>, in one
// fanout of r (one node), due in timeout.
func batchOf(r *Redlock, n int, timeout time.Duration) []*nodeReq {
	var batch []*nodeReq
	for i := range n {
		f := r.newFanout(nil)
		q := f.req(0, redlockState)
		q.keys = append(q.keys, "k"+string(rune('a'+i)))
		q.deadline = time.Now().Add(timeout)
		batch = append(batch, q)
	}
	return batch
}

// TestWorkerExec: a pipeline of three requests after SCRIPT FLUSH (each
// answered, sent again by EVAL), a request whose deadline passed (not
// sent: errNotSent, and the node ran no script), and a pipeline to a node
// that never answers (every request fails; go-redis leaves the ones after
// the failed read without an error).
func TestWorkerExec(t *testing.T) {
	ctx := context.Background()
	c := redistest.Server(t).Client(t)
	r, err := NewRedlock([]redis.UniversalClient{c}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w := r.workers[0]

	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	batch := batchOf(r, 3, time.Minute)
	w.exec(batch)
	for i, q := range batch {
		if arr, ok := q.res.([]any); q.err != nil || !ok || len(arr) != 0 {
			t.Errorf("request %d after SCRIPT FLUSH = %v, %v; want {} (free)", i, q.res, q.err)
		}
	}

	calls := redistest.ScriptCalls(t, c)
	expired := batchOf(r, 2, -time.Millisecond)
	w.exec(expired)
	for i, q := range expired {
		if !errors.Is(q.err, errNotSent) || !unsent(q.err) {
			t.Errorf("expired request %d = %v, %v; want errNotSent", i, q.res, q.err)
		}
	}
	if n := redistest.ScriptCalls(t, c); n != calls {
		t.Errorf("the node ran %d scripts for expired requests, want 0", n-calls)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { // accepts and never answers
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	hung := redis.NewClient(&redis.Options{Addr: l.Addr().String(), MaxRetries: -1, ContextTimeoutEnabled: true})
	defer hung.Close()
	hw := &nodeWorker{r: r, c: hung}
	batch = batchOf(r, 3, 100*time.Millisecond)
	hw.exec(batch)
	for i, q := range batch {
		if q.err == nil {
			t.Errorf("request %d to a node that never answers = %v, nil; want an error", i, q.res)
		}
	}
}

// TestRedlockTombstoneFlag: the rollback of a vote whose reply was lost
// leaves a tombstone and flags it in the waiters hash, so that the vote's
// fast path looks; a ForceRelease of the free key (empty token) keeps the
// flag. The token's next vote refuses once (the tombstone), the one after
// grants.
func TestRedlockTombstoneFlag(t *testing.T) {
	ctx := context.Background()
	c := redistest.Server(t).Client(t)
	r, err := NewRedlock([]redis.UniversalClient{c}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.TryAcquire(ctx, "warm", "t", time.Minute); err != nil { // admits the node
		t.Fatal(err)
	}
	key, tok := "k", "tok"
	k := r.keysOf(key, tok)
	f := r.newFanout(nil)
	q := f.req(0, redlockRelease)
	r.undoReq(q, &k, tok, 0, time.Minute, false) // fence 0: the vote's answer was lost
	f.send(q, time.Second)
	f.finish(f.wait(ctx, 1, nil))
	if n, err := c.Exists(ctx, k.bTomb.(string)).Result(); err != nil || n != 1 {
		t.Fatalf("tombstone after the undo: exists %d, %v", n, err)
	}
	if held, err := r.ForceRelease(ctx, key); err != nil || held {
		t.Fatalf("ForceRelease of the free key = %v, %v; want false, nil", held, err)
	}
	if _, err := r.TryAcquire(ctx, key, tok, time.Minute); err == nil {
		t.Fatal("the rolled-back token's vote granted despite its tombstone")
	}
	if _, err := r.TryAcquire(ctx, key, tok, time.Minute); err != nil {
		t.Fatalf("TryAcquire once the tombstone was used: %v", err)
	}
}
