package locked

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

func newInflight() *inflight { return &inflight{drained: make(chan struct{})} }

// close waits for every acquire that entered before it, and refuses the
// later ones.
func TestInflightCloseWaits(t *testing.T) {
	f := newInflight()
	const n = 8
	release := make(chan struct{})
	var entered, left sync.WaitGroup
	for range n {
		if !f.enter() {
			t.Fatal("enter refused before close")
		}
		entered.Add(1)
		left.Add(1)
		go func() {
			defer left.Done()
			entered.Done()
			<-release
			f.leave()
		}()
	}
	entered.Wait()
	closed := make(chan struct{})
	go func() { f.close(); close(closed) }()
	for f.n.Load() < closing { // until close has begun
		runtime.Gosched()
	}
	if f.enter() {
		t.Fatal("enter accepted after close began")
	}
	select {
	case <-closed:
		t.Fatal("close returned with acquires in flight")
	default:
	}
	close(release)
	<-closed
	left.Wait()
	if f.enter() {
		t.Fatal("enter accepted after close")
	}
}

// Many enters racing with close: each one accepted has left by the time
// close returns.
func TestInflightRace(t *testing.T) {
	for range 20 {
		f := newInflight()
		var active atomic.Int64
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 100 {
					if !f.enter() {
						return
					}
					active.Add(1)
					runtime.Gosched()
					active.Add(-1)
					f.leave()
				}
			}()
		}
		f.close()
		if a := active.Load(); a != 0 {
			t.Fatalf("close returned with %d acquires in flight", a)
		}
		wg.Wait()
	}
}

func TestInflightCloseIdle(t *testing.T) {
	f := newInflight()
	if !f.enter() {
		t.Fatal("enter refused")
	}
	f.leave()
	f.close() // nothing in flight: returns at once
	if f.enter() {
		t.Fatal("enter accepted after close")
	}
	if got := f.n.Load(); got != closing {
		t.Fatalf("n = %d after a refused enter, want closing (%d): a refused enter leaves again", got, int64(closing))
	}
}
