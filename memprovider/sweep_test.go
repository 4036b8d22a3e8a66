package memprovider

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// entries counts the map entries of every shard, held or free.
func (p *Provider) entries() int {
	n := 0
	for i := range p.shards {
		s := &p.shards[i]
		s.mu.Lock()
		n += len(s.locks)
		s.mu.Unlock()
	}
	return n
}

// A burst of keys held at once and then released leaves no more entries
// than a few sweeps' thresholds: releases sweep, not only new keys.
func TestBurstReleaseSweeps(t *testing.T) {
	p := New()
	defer p.Close()
	ctx := context.Background()
	const n = 20000
	for i := range n {
		k := "burst:" + strconv.Itoa(i)
		if _, err := p.TryAcquire(ctx, k, "t", time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if got := p.entries(); got != n {
		t.Fatalf("%d entries while %d keys are held", got, n)
	}
	for i := range n {
		if err := p.Release(ctx, "burst:"+strconv.Itoa(i), "t"); err != nil {
			t.Fatal(err)
		}
	}
	if got, limit := p.entries(), len(p.shards)*minSweepAt; got > limit {
		t.Fatalf("%d entries left after releasing all %d keys; want at most %d", got, n, limit)
	}
	if p.Len() != 0 {
		t.Fatalf("Len = %d after releasing everything", p.Len())
	}
}
