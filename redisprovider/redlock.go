package redisprovider

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/provider"
)

var (
	//go:embed scripts/redlock_acquire.lua
	redlockAcquireSrc string
	//go:embed scripts/redlock_release.lua
	redlockReleaseSrc string
	//go:embed scripts/redlock_extend.lua
	redlockExtendSrc string
	//go:embed scripts/redlock_raise.lua
	redlockRaiseSrc string
	//go:embed scripts/redlock_probe.lua
	redlockProbeSrc string
	//go:embed scripts/redlock_admit.lua
	redlockAdmitSrc string

	redlockAcquire = newNodeScript(redlockScript(redlockAcquireSrc))
	redlockRelease = newNodeScript(redlockScript(redlockReleaseSrc))
	redlockExtend  = newNodeScript(redlockScript(redlockExtendSrc))
	redlockRaise   = newNodeScript(redlockScript(redlockRaiseSrc))
	redlockState   = newNodeScript(stateScript)
	redlockProbe   = redis.NewScript(redlockProbeSrc)
	redlockAdmit   = redis.NewScript(redlockAdmitSrc)
)

// redlockScript is src with the hold format's functions (hold.lua), so that
// a Redlock node's holds are holds of the one format every other script
// and State read. A Redlock hold's nonce is the constant REDLOCK_NONCE:
// Redlock undoes a re-sent vote by rollback and tombstone instead.
func redlockScript(src string) *redis.Script {
	return holdScript("local REDLOCK_NONCE = 'rl'\n" + src)
}

// Defaults used when RedlockOptions leave a field zero.
const (
	DefaultDriftFactor = 0.01
	DefaultNodeTimeout = 500 * time.Millisecond
)

// RedlockOptions configure a Redlock. A nil *RedlockOptions, and every zero
// field, means the default.
type RedlockOptions struct {
	// Options apply to each node's provider.
	Options

	// DriftFactor is the share of the TTL allowed for clock drift between
	// the nodes and this process; 2 ms more are always allowed. A hold is
	// valid for TTL − time spent acquiring − drift, and a re-admitted node
	// waits the longest TTL plus this allowance before it votes. Default
	// DefaultDriftFactor.
	DriftFactor float64

	// NodeTimeout bounds each node's answer (and never exceeds a third of
	// the TTL), so a dead node cannot eat the hold's validity. Default
	// DefaultNodeTimeout.
	NodeTimeout time.Duration
}

var _ provider.Provider = (*Redlock)(nil)

// Redlock is a provider.Provider that holds each lock on a quorum
// (N/2+1) of N independent Redis nodes, so that losing a minority of them
// changes nothing: neither mutual exclusion nor the order of fences.
//
// Acquire asks every node at once and succeeds once a quorum has voted
// for it within the validity time (TTL − elapsed − drift); otherwise it
// rolls back the partial votes without waking anybody, and a waiter
// retries after a jittered pause. A vote issues max(counter, floor)+1 on
// its node; the fence of the grant is the highest of the quorum's votes,
// written back to a quorum before the grant is returned whenever the votes
// differ, so every later quorum, which must meet that one, issues a higher
// fence.
//
// Each node carries a marker. A node that lost its data (restarted without
// persistence) has none, and refuses to vote until it is re-admitted: the
// admission reads the highest fence and the longest TTL granted from a
// quorum of admitted nodes, sets the node's floor to that fence, and makes
// it wait out that TTL plus the drift allowance, so that every hold it
// forgot has expired everywhere. With fewer admitted nodes than a quorum
// nothing can be re-admitted, and calls fail with ErrUnavailable (a
// majority lost its data: see docs/decisions.md for the fault model).
// Nodes are admitted without a wait only when all of them answer and none
// has a marker: a new deployment. The longest TTL is not configured: each
// node records the longest TTL it granted or extended (in its marker, by
// the same script), and every hold was recorded so on a quorum, which the
// admission's read meets. So the wait is exact for the TTLs actually used;
// a deployment that once granted an hour-long TTL makes a re-admitted node
// wait an hour (keep TTLs short and renew instead).
//
// Every call returns as soon as a quorum has decided its outcome; the
// answers of slower nodes are handled (late votes rolled back) when they
// come, and Close waits for them. Each node's requests go out in the order
// they were made, through one goroutine per node (pipelined when several
// wait), so a Release is never overtaken by the vote it follows.
//
// Redlock waiters are woken by any node's release, in any order: fair
// per-node queues could each put a different waiter first and let nobody
// win a quorum. Redlock waiting is prompt but not fair.
type Redlock struct {
	nodes       []*Provider
	quorum      int
	drift       float64
	nodeTimeout time.Duration
	poll        time.Duration
	closed      atomic.Bool
	id          string        // names this Redlock's admission claims
	seq         atomic.Uint64 // numbers them

	bgCtx    context.Context // ended by Close: stops admissions
	bgCancel context.CancelFunc
	bgMu     sync.Mutex
	// bgClosed is guarded by bgMu; bg counts the goroutines started by goBG.
	bgClosed bool
	bg       sync.WaitGroup

	busyMu sync.Mutex
	// busy is guarded by busyMu: the nodes where a vote of a key and token
	// is in flight or being undone. A try skips them, so that a late undo
	// never meets a later vote of the same token.
	busy map[busyKey]busyMark

	admitMu sync.Mutex
	// admitting is guarded by admitMu: the running admission, or nil.
	admitting *admission

	markers, waits []any // each node's marker and admission wait keys, boxed once
	channels       []any // each node's wake-up channel, boxed once

	workers    []*nodeWorker // one per node: see redlock_worker.go
	workerStop chan struct{} // closed by Close once no request is outstanding
	workerWG   sync.WaitGroup
}

// NewRedlock returns a Redlock over the given independent nodes: N ≥ 1
// clients, each of one redis-server (or a Sentinel-managed primary; not a
// Cluster or Ring: the node marker is one key per node), created with
// ContextTimeoutEnabled (go-redis otherwise ignores context deadlines on the
// socket, so a hung node could not be cut off at NodeTimeout). The quorum
// is N/2+1, so an even N tolerates no more lost nodes than N−1 does (4
// nodes, like 3, survive one) and costs one more vote per grant. It does
// not own the clients. It starts one goroutine per node, which Close
// stops. opts may be nil.
func NewRedlock(clients []redis.UniversalClient, opts *RedlockOptions) (*Redlock, error) {
	var o RedlockOptions
	if opts != nil {
		o = *opts
	}
	switch {
	case len(clients) == 0:
		return nil, &provider.ArgError{Arg: "clients", Reason: "need at least one node"}
	case o.DriftFactor < 0 || o.DriftFactor >= 0.5:
		return nil, &provider.ArgError{Arg: "DriftFactor", Reason: "must be in [0, 0.5)"}
	case o.NodeTimeout < 0:
		return nil, &provider.ArgError{Arg: "NodeTimeout", Reason: "must not be negative"}
	}
	r := &Redlock{
		quorum:      len(clients)/2 + 1,
		drift:       o.DriftFactor,
		nodeTimeout: o.NodeTimeout,
		id:          uuid.NewString(),
		busy:        make(map[busyKey]busyMark),
	}
	if r.drift == 0 {
		r.drift = DefaultDriftFactor
	}
	if r.nodeTimeout == 0 {
		r.nodeTimeout = DefaultNodeTimeout
	}
	for i, c := range clients {
		switch c.(type) {
		case *redis.ClusterClient, *redis.Ring:
			return nil, &provider.ArgError{Arg: fmt.Sprintf("clients[%d]", i),
				Reason: "a Redlock node must be one server (a Cluster or Ring spreads the node marker's and the locks' keys over several)"}
		}
		if enabled, known := contextTimeouts(c); known && !enabled {
			return nil, &provider.ArgError{Arg: fmt.Sprintf("clients[%d]", i),
				Reason: "set ContextTimeoutEnabled in its options: without it a hung node ignores NodeTimeout and eats the hold's validity"}
		}
		p, err := New(c, &o.Options)
		if err != nil {
			return nil, fmt.Errorf("redisprovider: node %d: %w", i, err)
		}
		p.subTimeout = min(p.subTimeout, r.nodeTimeout)
		r.nodes = append(r.nodes, p)
	}
	r.poll = r.nodes[0].poll
	r.bgCtx, r.bgCancel = context.WithCancel(context.Background())
	r.workerStop = make(chan struct{})
	for _, n := range r.nodes {
		marker, wait, _ := n.nodeKeys()
		r.markers, r.waits = append(r.markers, marker), append(r.waits, wait)
		r.channels = append(r.channels, n.channel)
		w := &nodeWorker{r: r, c: n.c, wake: make(chan struct{}, 1)}
		r.workers = append(r.workers, w)
		r.workerWG.Add(1)
		go func() {
			defer r.workerWG.Done()
			w.run(r.workerStop)
		}()
	}
	return r, nil
}

// subscribed reports whether p's wake-up subscription is running, so
// that watch will not wait for one.
func (p *Provider) subscribed() bool {
	p.subMu.Lock()
	defer p.subMu.Unlock()
	return p.sub != nil
}

// nodeKeys returns a node's Redlock keys: its marker, its admission wait
// and the admission claims on it. They have no hash tag and cannot clash
// with a lock's keys, which start with prefix + "{".
func (p *Provider) nodeKeys() (marker, wait, claims string) {
	return p.prefix + "redlock:node", p.prefix + "redlock:wait", p.prefix + "redlock:claims"
}

// goBG runs f in a goroutine that Close waits for, or, once Close has
// begun, in the caller's.
func (r *Redlock) goBG(f func()) {
	r.bgMu.Lock()
	if r.bgClosed {
		r.bgMu.Unlock()
		f()
		return
	}
	r.bg.Add(1)
	r.bgMu.Unlock()
	go func() {
		defer r.bg.Done()
		f()
	}()
}

// ask calls fn on the nodes listed, at once, each with its own timeout
// and not cancelled with ctx: an answer that comes after the caller has
// decided is still needed, to undo what it did. decide (nil: wait for all)
// sees each answer as it arrives, in the caller's goroutine, and returns
// true once the outcome is settled; ask then returns the answers so far
// (answered[i] set) and hands each later one to late (nil: drop), in a
// background goroutine. ask also returns when ctx ends.
func ask[T any](ctx context.Context, r *Redlock, nodes []int, timeout time.Duration,
	fn func(ctx context.Context, i int, n *Provider) T, decide func(i int, x T) bool, late func(i int, x T),
) (out []T, answered []bool) {
	type answer struct {
		i int
		x T
	}
	ch := make(chan answer, len(nodes))
	base := context.WithoutCancel(ctx)
	for _, i := range nodes {
		r.goBG(func() {
			nctx, cancel := context.WithTimeout(base, timeout)
			defer cancel()
			ch <- answer{i, fn(nctx, i, r.nodes[i])}
		})
	}
	out, answered = make([]T, len(r.nodes)), make([]bool, len(r.nodes))
	got := 0
wait:
	for got < len(nodes) {
		select {
		case a := <-ch:
			got++
			out[a.i], answered[a.i] = a.x, true
			if decide != nil && decide(a.i, a.x) {
				break wait
			}
		case <-ctx.Done():
			break wait
		}
	}
	if rest := len(nodes) - got; rest > 0 {
		r.goBG(func() {
			for range rest {
				a := <-ch
				if late != nil {
					late(a.i, a.x)
				}
			}
		})
	}
	return out, answered
}

// all lists every node.
func (r *Redlock) all() []int {
	idx := make([]int, len(r.nodes))
	for i := range idx {
		idx[i] = i
	}
	return idx
}

func (r *Redlock) timeout(ttl time.Duration) time.Duration {
	return max(min(r.nodeTimeout, ttl/3), time.Millisecond)
}

// allowance is the clock-drift allowance for a hold of ttl.
func (r *Redlock) allowance(ttl time.Duration) time.Duration {
	return time.Duration(float64(ttl)*r.drift) + 2*time.Millisecond
}

// validity returns how long a hold taken at start with ttl stays valid now.
func (r *Redlock) validity(start time.Time, ttl time.Duration) time.Duration {
	return ttl - time.Since(start) - r.allowance(ttl)
}

// grant is the Grant of a quorum hold taken at start.
func (r *Redlock) grant(fence uint64, start time.Time, ttl time.Duration) provider.Grant {
	return provider.Grant{Fence: fence, Expires: start.Add(ttl - r.allowance(ttl))}
}

// unsent reports whether err is a failure to connect, or a request that
// its node's worker never sent, so that the request cannot have reached
// the node.
func unsent(err error) bool {
	var op *net.OpError
	return errors.Is(err, errNotSent) || errors.As(err, &op) && op.Op == "dial"
}

// A node's answer to a vote.
const (
	voteGranted    = iota
	voteHeld       // somebody holds the key there
	voteUnadmitted // the node lost its data and is not admitted
	voteWaiting    // re-admitted, waiting out the longest TTL
	voteFailed     // no answer: the vote may or may not have run
	voteSkipped    // not asked: an earlier try's answer is still pending there
)

type vote struct {
	kind   int
	fence  uint64
	d      time.Duration // voteHeld: the holder's PTTL; voteWaiting: the wait left
	holder string        // voteHeld: the holder's token
	err    error
}

// redlockKeys are one key's Redis keys on every node (the nodes share
// their Options, so their prefix).
type redlockKeys struct {
	key, lock, counter string
	// The keys that requests send, boxed once for all nodes.
	bLock, bCounter, bWaiters, bTomb any
}

func (r *Redlock) keysOf(key, token string) redlockKeys {
	lock, counter, _, waiters := r.nodes[0].keys(key)
	return redlockKeys{key, lock, counter, lock, counter, waiters, tombstone(lock, token)}
}

// voteReq fills q with the acquire script's call (token and ttl boxed
// once per call: ms(ttl)).
func (r *Redlock) voteReq(q *nodeReq, k *redlockKeys, token, ttlMs, lease any, wait bool) {
	join := 0
	if wait {
		join = 1
	}
	q.keys = append(q.keys, k.bLock, k.bCounter, k.bWaiters, r.markers[q.node], r.waits[q.node], k.bTomb)
	q.args = append(q.args, token, ttlMs, join, lease)
}

// parseVote reads the acquire script's answer.
func parseVote(resp any, err error) vote {
	if err != nil {
		return vote{kind: voteFailed, err: err}
	}
	res, _ := resp.([]any)
	var (
		code, x int64
		holder  string
		okx     = len(res) >= 2
	)
	if okx {
		code, okx = res[0].(int64)
		x, _ = res[1].(int64)
	}
	if len(res) == 3 {
		holder, _ = res[2].(string)
	}
	if !okx {
		return vote{kind: voteFailed, err: fmt.Errorf("acquire script returned %v", resp)}
	}
	d := time.Duration(x) * time.Millisecond
	switch code {
	case 1:
		return vote{kind: voteGranted, fence: uint64(x)}
	case 0:
		return vote{kind: voteHeld, d: d, holder: holder}
	case -1:
		return vote{kind: voteUnadmitted}
	default:
		return vote{kind: voteWaiting, d: d}
	}
}

// undoReq fills q with the rollback of token's vote on its node: the one
// with fence, or, for fence 0, any (its answer was lost, so it may also
// not have run yet: it then leaves a tombstone). It wakes waiters only if
// wake is set: the undo of a vote that came back late, or of a quorum of
// votes (which others may have seen as a hold).
func (r *Redlock) undoReq(q *nodeReq, k *redlockKeys, token string, fence uint64, ttl time.Duration, wake bool) {
	tomb := int64(0)
	if fence == 0 {
		tomb = ms(ttl)
	}
	w := 0
	if wake {
		w = 1
	}
	q.keys = append(q.keys, k.bLock, k.bCounter, k.bWaiters, k.bTomb)
	q.args = append(q.args, token, "undo", r.nodes[q.node].channel, k.key, fence, tomb, w)
}

// undoAsync rolls back token's vote on node i in the background, waking
// waiters, and then calls then (nil: none) in the node worker's goroutine.
// If it fails, the TTL or the tombstone undoes the vote.
func (r *Redlock) undoAsync(i int, k *redlockKeys, token string, fence uint64, ttl time.Duration, then lateHandler) {
	f := r.newFanout(then)
	q := f.req(i, redlockRelease)
	r.undoReq(q, k, token, fence, ttl, true)
	f.send(q, r.nodeTimeout)
	f.finish(0)
}

// undoLater is undoAsync that then ends node i's busy mark.
func (r *Redlock) undoLater(i int, k *redlockKeys, key, token string, fence uint64, ttl time.Duration) {
	r.undoAsync(i, k, token, fence, ttl, &busyDone{r, key, token})
}

// busyDone is a lateHandler that ends its node's busy mark.
type busyDone struct {
	r          *Redlock
	key, token string
}

func (b *busyDone) late(q *nodeReq) { b.r.done(q.node, b.key, b.token) }

type busyKey struct {
	node       int
	key, token string
}

// busyMark is what is in flight on a node for one key and token: a vote,
// and the releases sent meanwhile.
type busyMark struct {
	n        int           // requests in flight
	released bool          // a Release was sent meanwhile, not queued behind the vote
	done     chan struct{} // made by idle, closed when the last one ends
}

// claim marks node i busy with a vote of key and token; it reports false
// if it already was.
func (r *Redlock) claim(i int, key, token string) bool {
	r.busyMu.Lock()
	defer r.busyMu.Unlock()
	k := busyKey{i, key, token}
	if _, ok := r.busy[k]; ok {
		return false
	}
	r.busy[k] = busyMark{n: 1}
	return true
}

// releasing marks node i busy with a Release of key and token, which the
// node's worker sends after whatever it was busy with (ordered) or not.
func (r *Redlock) releasing(i int, key, token string, ordered bool) {
	r.busyMu.Lock()
	defer r.busyMu.Unlock()
	k := busyKey{i, key, token}
	m := r.busy[k]
	m.n++
	m.released = m.released || (m.n > 1 && !ordered)
	r.busy[k] = m
}

// done ends one request that claim or releasing began. It reports whether
// a Release of key and token that may have overtaken a vote was sent
// meanwhile, so that the vote, if it granted, must be freed.
func (r *Redlock) done(i int, key, token string) (released bool) {
	r.busyMu.Lock()
	defer r.busyMu.Unlock()
	k := busyKey{i, key, token}
	m, ok := r.busy[k]
	if !ok {
		return false
	}
	if m.n--; m.n == 0 {
		delete(r.busy, k)
		if m.done != nil {
			close(m.done)
		}
	} else {
		r.busy[k] = m
	}
	return m.released
}

// ordered reports whether requests sent now go through the node workers
// (until Close begins), so that each node runs them in order.
func (r *Redlock) ordered() bool {
	r.bgMu.Lock()
	defer r.bgMu.Unlock()
	return !r.bgClosed
}

// idle waits until no node is busy with key and token, or ctx ends; it
// reports whether they all ended.
func (r *Redlock) idle(ctx context.Context, key, token string) bool {
	var marks []chan struct{}
	r.busyMu.Lock()
	for i := range r.nodes {
		k := busyKey{i, key, token}
		if m, ok := r.busy[k]; ok {
			if m.done == nil {
				m.done = make(chan struct{})
				r.busy[k] = m
			}
			marks = append(marks, m.done)
		}
	}
	r.busyMu.Unlock()
	for _, done := range marks {
		select {
		case <-done:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// outcome is the result of one try.
type outcome struct {
	g      provider.Grant
	retry  time.Duration // when to try again unwoken: the soonest holder expiry or admission wait; -1 unknown
	split  bool          // some nodes voted for us, too few
	admit  bool          // a node is not admitted
	failed bool          // a node failed (not only unadmitted or waiting)
	busy   bool          // nodes busy with an earlier vote were needed
	err    error
}

// tryCall is one try's state that its late answers need.
type tryCall struct {
	r          *Redlock
	k          redlockKeys
	key, token string
	ttl        time.Duration
	ok         bool   // set before the fanout finishes
	final      uint64 // the grant's fence, once ok
}

// late handles a vote that came after the try decided, in a node worker's
// goroutine: it must not block.
func (t *tryCall) late(rq *nodeReq) {
	r, i, v := t.r, rq.node, parseVote(rq.res, rq.err)
	switch {
	case t.ok && v.kind == voteGranted: // one more node of the hold
		switch {
		case r.done(i, t.key, t.token): // released, maybe before this vote ran
			r.undoAsync(i, &t.k, t.token, v.fence, t.ttl, nil)
		case v.fence != t.final:
			r.sendAsync(i, r.timeout(t.ttl), nil, redlockRaise, []string{t.k.lock, t.k.counter, r.marker(i)}, t.token, t.final)
		}
		return
	case v.kind == voteUnadmitted:
		r.startAdmission()
	case t.ok:
	case v.kind == voteGranted:
		r.undoLater(i, &t.k, t.key, t.token, v.fence, t.ttl)
		return
	case v.kind == voteFailed && !errors.Is(v.err, errNotSent): // else it never ran
		r.undoLater(i, &t.k, t.key, t.token, 0, t.ttl)
		return
	}
	r.done(i, t.key, t.token)
}

// try asks every node for its vote once, but those still busy with an
// earlier vote of key and token.
func (r *Redlock) try(ctx context.Context, key, token string, ttl time.Duration, wait bool) outcome {
	start := time.Now()
	t := &tryCall{r: r, k: r.keysOf(key, token), key: key, token: token, ttl: ttl}
	k := &t.k
	n, q := len(r.nodes), r.quorum
	var (
		granted, answered, asked int
		cannot                   int            // answers that cannot vote
		holders                  map[string]int // token → nodes that refused for it
	)
	fo := r.newFanout(t)
	votes, got, skipped := fo.votes, fo.got, fo.asked
	var tokArg, ttlArg, leaseArg any = token, ms(ttl), ms(3 * r.poll)
	for i := range n {
		if r.claim(i, key, token) {
			asked++
			rq := fo.req(i, redlockAcquire)
			r.voteReq(rq, k, tokArg, ttlArg, leaseArg, wait)
			fo.send(rq, r.timeout(ttl))
		} else {
			skipped[i] = true
		}
	}
	recv := fo.wait(ctx, asked, func(rq *nodeReq) bool {
		v := parseVote(rq.res, rq.err)
		votes[rq.node], got[rq.node] = v, true
		answered++
		switch v.kind {
		case voteGranted:
			granted++
		case voteHeld:
			if holders == nil {
				holders = make(map[string]int)
			}
			holders[v.holder]++
		case voteUnadmitted, voteWaiting, voteFailed:
			cannot++
		}
		switch {
		case granted >= q:
			return true
		case granted+asked-answered >= q:
			return false // a grant is still possible
		case answered == asked || cannot > n-q:
			return true // refused, and why is known: unavailable or held
		}
		for _, c := range holders { // held by one holder on a quorum
			if c >= q {
				return true
			}
		}
		return false // held by partial votes, or nodes down: wait to tell which
	})
	defer func() { fo.finish(recv) }()

	var (
		grantsBuf [8]int
		grants    = grantsBuf[:0]
		fence     uint64
		equal     = true
		o         = outcome{retry: -1}
		counts    [voteSkipped + 1]int
	)
	for i := range n {
		v := votes[i]
		switch {
		case skipped[i]:
			counts[voteSkipped]++
			continue
		case !got[i]:
			continue // late: handled by tryCall.late
		}
		counts[v.kind]++
		switch v.kind {
		case voteGranted:
			if len(grants) > 0 && v.fence != fence {
				equal = false
			}
			grants = append(grants, i)
			fence = max(fence, v.fence)
		case voteHeld, voteWaiting:
			if o.retry < 0 || v.d < o.retry {
				o.retry = v.d
			}
		}
		if v.kind != voteGranted && v.kind != voteFailed {
			r.done(i, key, token)
		}
	}
	t.ok = len(grants) >= q && r.validity(start, ttl) > 0
	raised := false
	if t.ok && !equal {
		raised = true
		t.ok = r.raise(ctx, k, token, fence, grants, ttl) && r.validity(start, ttl) > 0
	}
	if t.ok {
		t.final = fence
		for i := range n {
			if got[i] && (votes[i].kind == voteGranted || votes[i].kind == voteFailed) {
				r.done(i, key, token) // a failed vote may hold: Release frees it
			}
		}
		o.g = r.grant(fence, start, ttl)
		return o
	}
	// Roll back: the votes we saw now (their nodes answer), lost answers
	// in the background.
	if len(grants) > 0 {
		uo := r.newFanout(nil)
		for _, i := range grants {
			f := votes[i].fence
			if raised {
				f = 0 // the raise may have rewritten it: free the hold, keep the counter
			}
			rq := uo.req(i, redlockRelease)
			r.undoReq(rq, k, token, f, ttl, len(grants) >= q)
			uo.send(rq, r.timeout(ttl))
		}
		var failed []int
		ugot := uo.wait(ctx, len(grants), func(rq *nodeReq) bool {
			if rq.err != nil {
				failed = append(failed, rq.node)
			} else {
				r.done(rq.node, key, token)
			}
			return false
		})
		// Failed undos are sent again, leaving a tombstone; unanswered
		// ones (ctx ended) the same once they answer.
		for _, i := range failed {
			r.undoLater(i, k, key, token, 0, ttl)
		}
		uo.late = lateFunc(func(rq *nodeReq) {
			if rq.err != nil {
				r.undoLater(rq.node, k, key, token, 0, ttl)
			} else {
				r.done(rq.node, key, token)
			}
		})
		uo.finish(ugot)
	}
	for i := range n {
		switch {
		case !got[i] || votes[i].kind != voteFailed:
		case errors.Is(votes[i].err, errNotSent): // never ran: nothing to undo
			r.done(i, key, token)
		default:
			r.undoLater(i, k, key, token, 0, ttl)
		}
	}
	o.admit = counts[voteUnadmitted] > 0
	o.failed = counts[voteFailed] > 0
	if o.admit {
		r.startAdmission()
	}
	if ctx.Err() != nil {
		o.err = provider.CtxError(ctx)
		return o
	}
	cannot = counts[voteUnadmitted] + counts[voteWaiting] + counts[voteFailed]
	if cannot > n-q {
		var errs []error
		for i := range n {
			if got[i] && votes[i].kind == voteFailed {
				errs = append(errs, fmt.Errorf("node %d: %w", i, votes[i].err))
			}
		}
		// The node errors are quoted, not wrapped: a node that timed out
		// says DeadlineExceeded, which must not make this error match it.
		o.err = provider.Unavailable(fmt.Errorf("redlock: %d of %d nodes cannot vote (%d not admitted, %d waiting out their admission, %d failed), quorum is %d: %v",
			cannot, n, counts[voteUnadmitted], counts[voteWaiting], counts[voteFailed], q, errors.Join(errs...)))
		return o
	}
	if counts[voteSkipped] > 0 && cannot+counts[voteSkipped] > n-q {
		// Nodes still busy with an earlier vote of ours are needed for a
		// quorum: ask again once they are done.
		o.err, o.busy = provider.ErrNotAcquired, true
		return o
	}
	// Held. By one holder on a quorum of the answers: wait for its
	// release (a late undo of such votes wakes the waiters too). Otherwise
	// the key is held only by the partial votes of a split, which are
	// undone without a wake-up: retry after a jittered pause.
	held := false
	for _, c := range holders {
		held = held || c >= q
	}
	o.split = len(grants) > 0 || !held
	o.err = provider.ErrNotAcquired
	return o
}

// marker is node i's marker key.
func (r *Redlock) marker(i int) string { return r.markers[i].(string) }

// raise records fence on the granting nodes; it reports whether a quorum
// now records it.
func (r *Redlock) raise(ctx context.Context, k *redlockKeys, token string, fence uint64, granted []int, ttl time.Duration) bool {
	raised, answered := 0, 0
	fo := r.newFanout(nil)
	for _, i := range granted {
		q := fo.req(i, redlockRaise)
		q.keys = append(q.keys, k.bLock, k.bCounter, r.markers[i])
		q.args = append(q.args, token, fence)
		fo.send(q, r.timeout(ttl))
	}
	got := fo.wait(ctx, len(granted), func(q *nodeReq) bool {
		answered++
		if v, _ := q.res.(int64); q.err == nil && v == 1 {
			raised++
		}
		return raised >= r.quorum || raised+len(granted)-answered < r.quorum
	})
	fo.finish(got)
	return raised >= r.quorum
}

// TryAcquire implements provider.Provider. If nodes that lost their data
// keep a quorum from voting, it waits (within ctx) for their admission
// once: so the first call on a new deployment admits every node.
func (r *Redlock) TryAcquire(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	if err := usable(&r.closed, provider.CheckKey(key), provider.CheckToken(token), provider.CheckTTL(ttl)); err != nil {
		return provider.Grant{}, err
	}
	if ctx.Err() != nil {
		return provider.Grant{}, provider.CtxError(ctx)
	}
	o := r.try(ctx, key, token, ttl, false)
	if o.busy && r.idle(ctx, key, token) {
		o = r.try(ctx, key, token, ttl, false)
	}
	if o.admit && errors.Is(o.err, provider.ErrUnavailable) && r.awaitAdmission(ctx) && r.idle(ctx, key, token) {
		o = r.try(ctx, key, token, ttl, false)
	}
	return o.g, o.err
}

// Acquire implements provider.Provider. A release published by any node
// wakes the waiter; after a split vote it retries after a jittered pause.
// It waits for nodes that are being re-admitted; store failures that leave
// no quorum end it with ErrUnavailable after maxStoreRetries+1 tries in a
// row (each bounded by NodeTimeout), not when ctx ends.
func (r *Redlock) Acquire(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	if err := usable(&r.closed, provider.CheckKey(key), provider.CheckToken(token), provider.CheckTTL(ttl)); err != nil {
		return provider.Grant{}, err
	}
	if ctx.Err() != nil {
		return provider.Grant{}, provider.CtxError(ctx)
	}
	wake := make(chan struct{}, 1)
	// Watch before the first try, so that no release after it is missed.
	// Each node's subscription is set up once per provider: nodes whose
	// subscription is not running yet are watched in parallel (each may
	// wait for Redis to confirm it), the others right here.
	stops := make([]func(), len(r.nodes))
	var watchers sync.WaitGroup
	for i, n := range r.nodes {
		if n.subscribed() {
			stops[i] = n.watch(ctx, key, "", wake)
			continue
		}
		watchers.Add(1)
		go func() {
			defer watchers.Done()
			stops[i] = n.watch(ctx, key, "", wake)
		}()
	}
	watchers.Wait()
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	admitted, failures := false, 0
	var last error
loop:
	for {
		if r.closed.Load() {
			last = provider.ErrClosed
			break
		}
		o := r.try(ctx, key, token, ttl, true)
		if o.err == nil {
			return o.g, nil
		}
		last = o.err
		if ctx.Err() != nil {
			break
		}
		d := time.Duration(float64(r.poll) * (0.5 + rand.Float64()))
		unavailable := errors.Is(o.err, provider.ErrUnavailable)
		if unavailable && o.failed {
			if failures++; failures > maxStoreRetries {
				break // a store failure that lasts ends the wait
			}
			d = time.Duration(rand.Int64N(int64(r.splitPause(ttl)))) + time.Millisecond
		} else if !o.busy {
			failures = 0
		}
		switch {
		case unavailable && o.admit: // the first call on new nodes, or nodes that lost their data
			if admitted || !r.awaitAdmission(ctx) || !r.idle(ctx, key, token) {
				break loop
			}
			admitted, d = true, time.Millisecond
		case o.busy:
			if !r.idle(ctx, key, token) {
				break loop
			}
			d = time.Millisecond
		case o.split: // jittered, so that the voters of a split do not meet again
			d = min(d, time.Duration(rand.Int64N(int64(r.splitPause(ttl))))+time.Millisecond)
		}
		if o.retry >= 0 && o.retry < d {
			d = max(o.retry, time.Millisecond) // PTTL 0: lapsing right now
		}
		timer.Reset(d)
		select {
		case <-wake:
		case <-timer.C:
		case <-ctx.Done():
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	r.leave(key, token)
	switch {
	case ctx.Err() == nil || errors.Is(last, provider.ErrClosed):
		return provider.Grant{}, last
	case errors.Is(last, provider.ErrUnavailable):
		return provider.Grant{}, errors.Join(provider.CtxError(ctx), last)
	}
	return provider.Grant{}, provider.CtxError(ctx)
}

// maxStoreRetries is how many tries in a row that fail for node failures
// (timeouts under load, a node restarting) Acquire repeats before it
// reports ErrUnavailable.
const maxStoreRetries = 1

// splitPause bounds the random pause after a split vote: a few node round
// trips, never more than a tenth of the TTL.
func (r *Redlock) splitPause(ttl time.Duration) time.Duration {
	return max(min(5*time.Millisecond, ttl/10), time.Millisecond)
}

// leave takes token off every node's waiter list, in the background.
func (r *Redlock) leave(key, token string) {
	k := r.keysOf(key, token)
	f := r.newFanout(nil)
	for i := range r.nodes {
		q := f.req(i, redlockRelease)
		q.keys = append(q.keys, k.bLock, k.bCounter, k.bWaiters, k.bTomb)
		q.args = append(q.args, token, "leave", r.nodes[i].channel, key, 0, 1, 0)
		f.send(q, r.nodeTimeout)
	}
	f.finish(0)
}

// Release implements provider.Provider. It frees token's hold on every
// node. It returns nil once a quorum has freed it; ErrNotHeld when so few
// nodes can have had it (freed ones plus unanswered ones) that it was no
// quorum hold; otherwise ErrOutcomeUnknown (ErrUnavailable if nothing was
// freed and no request reached a node).
func (r *Redlock) Release(ctx context.Context, key, token string) error {
	if err := usable(&r.closed, provider.CheckKey(key), provider.CheckToken(token)); err != nil {
		return err
	}
	return r.release(ctx, key, token, "release")
}

// release runs the release script on every node (token "": whoever holds
// the key).
func (r *Redlock) release(ctx context.Context, key, token, mode string) error {
	freed, notHeld := 0, 0
	n, q := len(r.nodes), r.quorum
	k := r.keysOf(key, token)
	// Each node is busy with this release until it answers, so that a
	// later vote of the same token cannot meet it. A node busy with a
	// vote of token runs the release after it (its worker sends them in
	// order), or, once Close has begun, maybe before: then the vote, if
	// it granted, is freed when it comes back.
	ordered := r.ordered()
	f := r.newFanout(&busyDone{r, key, token})
	var tokArg, modeArg, keyArg any = token, mode, key
	for i := range n {
		r.releasing(i, key, token, ordered)
		rq := f.req(i, redlockRelease)
		rq.keys = append(rq.keys, k.bLock, k.bCounter, k.bWaiters, k.bTomb)
		rq.args = append(rq.args, tokArg, modeArg, r.channels[i], keyArg, 0, 1, 0)
		f.send(rq, r.nodeTimeout)
	}
	errs, got := f.errs, f.got
	recv := f.wait(ctx, n, func(rq *nodeReq) bool {
		r.done(rq.node, key, token)
		err := rq.err
		if v, _ := rq.res.(int64); err == nil && v != 1 {
			err = provider.ErrNotHeld
		}
		errs[rq.node], got[rq.node] = err, true
		switch {
		case err == nil:
			freed++
		case errors.Is(err, provider.ErrNotHeld):
			notHeld++
		}
		return freed >= q || notHeld > n-q
	})
	err := r.verdict(freed, notHeld, errs, got, provider.ErrNotHeld)
	f.finish(recv)
	return err
}

// verdict classifies a call to every node that changes what it holds:
// done is how many applied it, refused how many definitely did not.
func (r *Redlock) verdict(done, refused int, errs []error, got []bool, refusal error) error {
	n, q := len(r.nodes), r.quorum
	if done >= q {
		return nil
	}
	unknown := n - done - refused
	if done+unknown < q {
		return refusal
	}
	var failed []error
	sent := done > 0
	for i, err := range errs {
		switch {
		case !got[i]:
			sent = true
			failed = append(failed, fmt.Errorf("node %d: no answer yet", i))
		case err != nil && !errors.Is(err, refusal):
			sent = sent || !unsent(err)
			failed = append(failed, fmt.Errorf("node %d: %w", i, err))
		}
	}
	cause := fmt.Errorf("redlock: %d of %d nodes applied it, %d refused, %d did not answer, quorum is %d: %v",
		done, n, refused, unknown, q, errors.Join(failed...))
	if !sent {
		return provider.Unavailable(cause)
	}
	return provider.OutcomeUnknown(cause)
}

// Extend implements provider.Provider. It succeeds once a quorum has
// extended the hold within validity; it returns ErrNotHeld when so few
// nodes can still have it that it is no quorum hold, and otherwise
// ErrOutcomeUnknown (so auto-renewal tries again rather than ending).
func (r *Redlock) Extend(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	if err := usable(&r.closed, provider.CheckKey(key), provider.CheckToken(token), provider.CheckTTL(ttl)); err != nil {
		return provider.Grant{}, err
	}
	start := time.Now()
	extended, notHeld := 0, 0
	var fence uint64
	n, q := len(r.nodes), r.quorum
	k := r.keysOf(key, token)
	f := r.newFanout(nil)
	for i := range n {
		rq := f.req(i, redlockExtend)
		rq.keys = append(rq.keys, k.bLock, r.markers[i])
		rq.args = append(rq.args, token, ms(ttl))
		f.send(rq, r.timeout(ttl))
	}
	errs, got := f.errs, f.got
	recv := f.wait(ctx, n, func(rq *nodeReq) bool {
		v, _ := rq.res.(int64)
		err := rq.err
		if err == nil && v <= 0 {
			err = provider.ErrNotHeld
		}
		errs[rq.node], got[rq.node] = err, true
		switch {
		case err == nil:
			extended++
			fence = max(fence, uint64(v))
		case errors.Is(err, provider.ErrNotHeld):
			notHeld++
		}
		return extended >= q || notHeld > n-q
	})
	err := r.verdict(extended, notHeld, errs, got, provider.ErrNotHeld)
	f.finish(recv)
	if err != nil {
		return provider.Grant{}, err
	}
	if r.validity(start, ttl) <= 0 { // a quorum extended it, too late to count on
		return provider.Grant{}, provider.OutcomeUnknown(errors.New("redlock: extended by a quorum after its validity"))
	}
	return r.grant(fence, start, ttl), nil
}

// State implements provider.Provider. A key is held if a quorum of nodes
// agree on its token; the TTL reported is the time the quorum lasts.
func (r *Redlock) State(ctx context.Context, key string) (provider.State, error) {
	if err := usable(&r.closed, provider.CheckKey(key)); err != nil {
		return provider.State{}, err
	}
	if err := ctx.Err(); err != nil {
		return provider.State{}, provider.Unavailable(err)
	}
	type result struct {
		st  provider.State
		err error
	}
	n, q := len(r.nodes), r.quorum
	tokens := make(map[string]int)
	free := 0
	k := r.keysOf(key, "")
	res, got := make([]result, n), make([]bool, n)
	f := r.newFanout(nil)
	for i := range n {
		rq := f.req(i, redlockState)
		rq.keys = append(rq.keys, k.bLock)
		f.send(rq, r.nodeTimeout)
	}
	recv := f.wait(ctx, n, func(rq *nodeReq) bool {
		st, err := nodeState(k.lock, rq.res, rq.err)
		res[rq.node], got[rq.node] = result{st, err}, true
		switch {
		case err != nil:
		case st.Held:
			tokens[st.Token]++
			if tokens[st.Token] >= q {
				return true
			}
		default:
			free++
		}
		return free > n-q
	})
	f.finish(recv)
	answered := 0
	var errs []error
	byToken := make(map[string][]provider.State)
	for i, x := range res {
		switch {
		case !got[i]:
		case x.err != nil:
			errs = append(errs, fmt.Errorf("node %d: %w", i, x.err))
		default:
			answered++
			if x.st.Held {
				byToken[x.st.Token] = append(byToken[x.st.Token], x.st)
			}
		}
	}
	for token, sts := range byToken {
		if len(sts) < q {
			continue
		}
		st := provider.State{Held: true, Token: token}
		ttls := make([]time.Duration, len(sts))
		for i, s := range sts {
			st.Fence = max(st.Fence, s.Fence)
			ttls[i] = s.TTL
		}
		slices.Sort(ttls)
		st.TTL = ttls[len(ttls)-q] // the quorum-th longest
		return st, nil
	}
	if answered < q {
		return provider.State{}, provider.Unavailable(fmt.Errorf("redlock: %d of %d nodes answered, quorum is %d: %v", answered, n, q, errors.Join(errs...)))
	}
	return provider.State{}, nil
}

// nodeState reads one node's answer to the state script (as
// Provider.State does).
func nodeState(lock string, res any, err error) (provider.State, error) {
	if err != nil {
		return provider.State{}, err
	}
	if n, ok := res.(int64); ok && n == 0 {
		return provider.State{}, fmt.Errorf("redisprovider: %w: %q holds a value lockproof did not write", provider.ErrNotHeld, lock)
	}
	arr, _ := res.([]any)
	if len(arr) == 0 {
		return provider.State{}, nil
	}
	if len(arr) == 3 {
		token, _ := arr[0].(string)
		fence, ok := parseFence(arr[1])
		pttl, _ := arr[2].(int64)
		if ok && token != "" {
			return provider.State{Held: true, Token: token, Fence: fence, TTL: time.Duration(max(pttl, 0)) * time.Millisecond}, nil
		}
	}
	return provider.State{}, fmt.Errorf("%w: state script returned %v", provider.ErrUnavailable, res)
}

// ForceRelease implements provider.Provider. It reports whether any node
// had the key.
func (r *Redlock) ForceRelease(ctx context.Context, key string) (bool, error) {
	if err := usable(&r.closed, provider.CheckKey(key)); err != nil {
		return false, err
	}
	n := len(r.nodes)
	k := r.keysOf(key, "")
	f := r.newFanout(nil)
	for i := range n {
		rq := f.req(i, redlockRelease)
		rq.keys = append(rq.keys, k.bLock, k.bCounter, k.bWaiters, k.bTomb)
		rq.args = append(rq.args, "", "release", r.nodes[i].channel, key, 0, 1, 0)
		f.send(rq, r.nodeTimeout)
	}
	res, got := make([]error, n), make([]bool, n)
	freed, notHeld := 0, 0
	recv := f.wait(ctx, n, func(rq *nodeReq) bool {
		err := rq.err
		if v, _ := rq.res.(int64); err == nil && v != 1 {
			err = provider.ErrNotHeld
		}
		res[rq.node], got[rq.node] = err, true
		switch {
		case err == nil:
			freed++
		case errors.Is(err, provider.ErrNotHeld):
			notHeld++
		}
		return false
	})
	f.finish(recv)
	if freed > 0 {
		return true, nil
	}
	if answered := freed + notHeld; answered < r.quorum {
		return false, r.verdict(0, notHeld, res, got, provider.ErrNotHeld)
	}
	return false, nil
}

// Close stops admissions, waits for the goroutines and node requests that
// finish or undo calls already returned (each bounded by NodeTimeout),
// stops the node workers, and closes every node's provider. It is idempotent and does not close the clients.
func (r *Redlock) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	r.bgCancel()
	r.bgMu.Lock()
	r.bgClosed = true
	r.bgMu.Unlock()
	r.bg.Wait()
	close(r.workerStop)
	r.workerWG.Wait()
	var errs []error
	for _, n := range r.nodes {
		errs = append(errs, n.Close())
	}
	return errors.Join(errs...)
}

// contextTimeouts reports whether c lets context deadlines bound its
// socket reads and writes, when its type tells (known).
func contextTimeouts(c redis.UniversalClient) (enabled, known bool) {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled, true
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled, true
	case *redis.Ring:
		return c.Options().ContextTimeoutEnabled, true
	}
	return false, false
}

// claimID returns a new admission claim id of r.
func (r *Redlock) claimID() string {
	return r.id + "-" + strconv.FormatUint(r.seq.Add(1), 10)
}
