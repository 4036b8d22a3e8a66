package redisprovider

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Admission of nodes that lost their data. See Redlock and the fault model
// in docs/decisions.md.
//
// A node without a marker refuses to vote. An admission (one at a time
// per Redlock, in the background) runs in three rounds:
//
//  1. probe every node: a node with a marker reports its high fence and
//     longest TTL; a node without one is claimed (an in-memory claim that a
//     restart erases);
//  2. read the marked nodes again, now that every claimed node is known to
//     have lost its data: the floor is the highest fence of at least a
//     quorum of them, the wait the longest TTL plus drift;
//  3. admit each claimed node whose claim is still there, with that floor
//     and that wait.
//
// Every fence granted before the node lost its data was recorded on a
// quorum, which meets the quorum read in round 2 at a node that still
// records it (or was itself re-admitted above it later), so the floor is at
// least that fence. Fences granted after round 2 cannot have the new node's
// vote (it has no marker yet, then waits). If no node has a marker and all
// answer, the deployment is new: every node is admitted with floor 0 and no
// wait.

// admission is one run of admit.
type admission struct {
	done chan struct{} // closed when it has ended
	err  error         // set before done is closed
}

// startAdmission starts an admission unless one is running, and returns
// it.
func (r *Redlock) startAdmission() *admission {
	r.admitMu.Lock()
	if a := r.admitting; a != nil {
		r.admitMu.Unlock()
		return a
	}
	a := &admission{done: make(chan struct{})}
	r.admitting = a
	// Unlocked before goBG: once Close has begun, goBG runs the function in
	// this goroutine, and the function takes admitMu itself.
	r.admitMu.Unlock()
	r.goBG(func() {
		a.err = r.admit(r.bgCtx) // a failure is retried by the next call that meets the node
		r.admitMu.Lock()
		r.admitting = nil
		r.admitMu.Unlock()
		close(a.done)
	})
	return a
}

// awaitAdmission starts or joins an admission and waits for it; it
// reports whether it succeeded before ctx ended.
func (r *Redlock) awaitAdmission(ctx context.Context) bool {
	a := r.startAdmission()
	select {
	case <-a.done:
		return a.err == nil
	case <-ctx.Done():
		return false
	}
}

// errFewAdmitted: a majority of nodes lost its data, or cannot be read.
var errFewAdmitted = errors.New("redlock: fewer admitted nodes answered than a quorum, so no node can be re-admitted")

type probe struct {
	marked         bool
	high, maxTTLms int64
	err            error
}

// probeNodes runs round 1 or 2 on the nodes listed and waits for all.
func (r *Redlock) probeNodes(ctx context.Context, nodes []int, id string, claimTTL time.Duration) []probe {
	res, got := ask(ctx, r, nodes, r.nodeTimeout, func(ctx context.Context, _ int, n *Provider) probe {
		marker, wait, claims := n.nodeKeys()
		v, err := redlockProbe.Run(ctx, n.c, []string{marker, wait, claims}, id, ms(claimTTL)).Int64Slice()
		switch {
		case err != nil:
			return probe{err: err}
		case len(v) == 4 && v[0] == 1:
			return probe{marked: true, high: v[1], maxTTLms: v[2]}
		case len(v) == 1 && v[0] == 0:
			return probe{}
		}
		return probe{err: fmt.Errorf("probe script returned %v", v)}
	}, nil, nil)
	for i := range res {
		if !got[i] {
			res[i].err = ctx.Err()
		}
	}
	return res
}

// admit runs one admission.
func (r *Redlock) admit(ctx context.Context) error {
	id := r.claimID()
	claimTTL := max(4*r.nodeTimeout, time.Second)
	var marked, empty []int
	answered := 0
	for i, p := range r.probeNodes(ctx, r.all(), id, claimTTL) {
		switch {
		case p.err != nil:
		case p.marked:
			answered++
			marked = append(marked, i)
		default:
			answered++
			empty = append(empty, i)
		}
	}
	switch {
	case len(empty) == 0:
		return nil
	case len(marked) == 0 && answered == len(r.nodes): // a new deployment
		return r.admitAll(ctx, empty, id, 0, 0, 0)
	case len(marked) < r.quorum:
		return errFewAdmitted
	}
	var floor, maxTTLms int64
	read := 0
	for _, p := range r.probeNodes(ctx, marked, id, claimTTL) {
		if p.err == nil && p.marked {
			read++
			floor, maxTTLms = max(floor, p.high), max(maxTTLms, p.maxTTLms)
		}
	}
	if read < r.quorum {
		return errFewAdmitted
	}
	maxTTL := time.Duration(maxTTLms) * time.Millisecond
	return r.admitAll(ctx, empty, id, floor, maxTTLms, ms(maxTTL+r.allowance(maxTTL)))
}

// admitAll runs round 3 on the nodes listed.
func (r *Redlock) admitAll(ctx context.Context, nodes []int, id string, floor, maxTTLms, waitMs int64) error {
	res, got := ask(ctx, r, nodes, r.nodeTimeout, func(ctx context.Context, _ int, n *Provider) error {
		marker, wait, claims := n.nodeKeys()
		return redlockAdmit.Run(ctx, n.c, []string{marker, wait, claims}, id, floor, maxTTLms, waitMs).Err()
	}, nil, nil)
	var errs []error
	for _, i := range nodes {
		if !got[i] {
			errs = append(errs, fmt.Errorf("node %d: no answer", i))
		} else if res[i] != nil {
			errs = append(errs, fmt.Errorf("node %d: %w", i, res[i]))
		}
	}
	return errors.Join(errs...)
}
