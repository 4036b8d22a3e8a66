package redisprovider

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redlock's calls to its nodes go through one worker goroutine per node,
// started by NewRedlock and stopped by Close. A worker sends the requests
// queued for its node in order: one by one, or, when several are waiting,
// as one pipeline. So a node runs a caller's requests in the order they
// were made (a Release after the TryAcquire that it follows, even when the
// vote's answer came late), the calls of many callers share round trips,
// and no call starts a goroutine per node. Order holds as long as each
// request is answered; after a timeout or a broken connection a request
// may still run later, which the busy marks and tombstones deal with as
// before.

// errNotSent: the request's deadline had passed before its node's worker
// could send it (the node was slow with earlier requests).
var errNotSent = errors.New("redlock: not sent: the node's earlier requests took the whole timeout")

// maxBatch bounds the requests a worker sends in one pipeline.
const maxBatch = 128

// A nodeReq is one script call on one node, sent by that node's worker
// and answered to its fanout.
type nodeReq struct {
	fo       *fanout
	node     int
	script   *nodeScript
	keys     []any // strings, boxed once per call where the nodes share them
	args     []any
	deadline time.Time
	res      any
	err      error
	keyBuf   [6]any
	argBuf   [7]any
	cmdBuf   [16]any
}

// A nodeScript is a script with its SHA1 boxed once, so that a request
// is sent as EVALSHA with arguments boxed by the caller (go-redis's
// EvalSha boxes every key again).
type nodeScript struct {
	s   *redis.Script
	sha any
}

func newNodeScript(s *redis.Script) *nodeScript { return &nodeScript{s, s.Hash()} }

// cmd returns q's EVALSHA command line, in q's buffer.
func (q *nodeReq) cmd() []any {
	c := append(q.cmdBuf[:0], "evalsha", q.script.sha, len(q.keys))
	c = append(c, q.keys...)
	return append(c, q.args...)
}

// A fanout is one call's requests to its nodes (at most one per node) and
// the channel their answers arrive on while the caller decides. Once the
// caller has finished, later answers go to late instead, in the worker's
// goroutine: late must not block.
type fanout struct {
	r     *Redlock
	reqs  []nodeReq
	ch    chan *nodeReq // buffered for every node: a worker never blocks
	mu    sync.Mutex
	final bool // guarded by mu: the caller has finished
	late  lateHandler
	refs  int // guarded by mu: answers outstanding, plus one for the caller

	// The caller's scratch space, one entry per node, zeroed on reuse.
	votes []vote
	errs  []error
	got   []bool
	asked []bool
}

// A lateHandler takes the answers that arrive after the caller finished.
type lateHandler interface{ late(q *nodeReq) }

// lateFunc is a lateHandler.
type lateFunc func(q *nodeReq)

func (f lateFunc) late(q *nodeReq) { f(q) }

var fanoutPool sync.Pool

// newFanout returns an empty fanout of r, with late (nil: drop) for the
// answers that arrive after finish.
func (r *Redlock) newFanout(late lateHandler) *fanout {
	f, _ := fanoutPool.Get().(*fanout)
	if n := len(r.nodes); f == nil || len(f.reqs) != n {
		f = &fanout{reqs: make([]nodeReq, n), ch: make(chan *nodeReq, n),
			votes: make([]vote, n), errs: make([]error, n), got: make([]bool, n), asked: make([]bool, n)}
	}
	f.r, f.final, f.late, f.refs = r, false, late, 1
	return f
}

// req returns node i's request of f, emptied, with room for its keys and
// arguments in q.keys[:0] and q.args[:0].
func (f *fanout) req(i int, script *nodeScript) *nodeReq {
	q := &f.reqs[i]
	*q = nodeReq{fo: f, node: i, script: script}
	q.keys, q.args = q.keyBuf[:0], q.argBuf[:0]
	return q
}

// send queues q on its node's worker with timeout. Once Close has begun,
// it runs q in this goroutine instead.
func (f *fanout) send(q *nodeReq, timeout time.Duration) {
	q.deadline = time.Now().Add(timeout)
	f.mu.Lock()
	f.refs++
	f.mu.Unlock()
	r := f.r
	r.bgMu.Lock()
	if r.bgClosed {
		r.bgMu.Unlock()
		ctx, cancel := context.WithDeadline(context.Background(), q.deadline)
		q.res, q.err = run(ctx, r.nodes[q.node].c, q)
		cancel()
		f.answer(q)
		return
	}
	r.bg.Add(1)
	r.bgMu.Unlock()
	r.workers[q.node].push(q)
}

// answer takes q's answer: to the caller, or, once it has finished, to
// late.
func (f *fanout) answer(q *nodeReq) {
	f.mu.Lock()
	if !f.final {
		f.ch <- q
		f.mu.Unlock()
		return
	}
	f.mu.Unlock()
	if f.late != nil {
		f.late.late(q)
	}
	f.unref(1)
}

// wait receives answers until decide (nil: none) returns true, every one
// of sent requests has answered, or ctx ends. It reports the number
// received.
func (f *fanout) wait(ctx context.Context, sent int, decide func(q *nodeReq) bool) int {
	got := 0
	for got < sent {
		select {
		case q := <-f.ch:
			got++
			if decide != nil && decide(q) {
				return got
			}
		case <-ctx.Done():
			return got
		}
	}
	return got
}

// finish ends the caller's part: got answers it received, the ones that
// came meanwhile go to late now, and every later one as it arrives. The
// caller must not touch f afterwards.
func (f *fanout) finish(got int) {
	f.mu.Lock()
	f.final = true
	var pending []*nodeReq
	for len(f.ch) > 0 {
		pending = append(pending, <-f.ch)
	}
	f.mu.Unlock()
	if f.late != nil {
		for _, q := range pending {
			f.late.late(q)
		}
	}
	f.unref(1 + got + len(pending))
}

func (f *fanout) unref(n int) {
	f.mu.Lock()
	f.refs -= n
	last := f.refs == 0
	f.mu.Unlock()
	if last {
		for i := range f.reqs {
			f.reqs[i] = nodeReq{}
			f.votes[i], f.errs[i], f.got[i], f.asked[i] = vote{}, nil, false, false
		}
		f.r, f.late = nil, nil
		fanoutPool.Put(f)
	}
}

// sendAsync sends one request to node i whose answer goes to then (nil:
// dropped), in the worker's goroutine: then must not block.
func (r *Redlock) sendAsync(i int, timeout time.Duration, then lateHandler, script *nodeScript, keys []string, args ...any) {
	f := r.newFanout(then)
	q := f.req(i, script)
	for _, k := range keys {
		q.keys = append(q.keys, k)
	}
	q.args = append(q.args, args...)
	f.send(q, timeout)
	f.finish(0)
}

// nodeWorker sends one node's requests.
type nodeWorker struct {
	r     *Redlock
	c     redis.UniversalClient
	wake  chan struct{} // buffered 1: queue is not empty
	mu    sync.Mutex
	queue []*nodeReq // guarded by mu
	spare []*nodeReq
	cmds  []*redis.Cmd
	ctx   batchCtx
}

func (w *nodeWorker) push(q *nodeReq) {
	w.mu.Lock()
	w.queue = append(w.queue, q)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run sends the queued requests until stop is closed; Close closes it
// only once no request is outstanding.
func (w *nodeWorker) run(stop <-chan struct{}) {
	for {
		select {
		case <-w.wake:
		case <-stop:
			return
		}
		for {
			w.mu.Lock()
			n := min(len(w.queue), maxBatch)
			batch := append(w.spare[:0], w.queue[:n]...)
			w.queue = append(w.queue[:0], w.queue[n:]...)
			w.mu.Unlock()
			if n == 0 {
				break
			}
			w.exec(batch)
			for i, q := range batch {
				q.fo.answer(q)
				batch[i] = nil
				w.r.bg.Done()
			}
			w.spare = batch[:0]
		}
	}
}

// exec sends batch and sets every request's answer: one request by itself
// (EVALSHA, EVAL if the script is not loaded), several as one pipeline
// with the earliest deadline among them.
func (w *nodeWorker) exec(batch []*nodeReq) {
	now := time.Now()
	var deadline time.Time
	live := 0
	for _, q := range batch {
		if !q.deadline.After(now) {
			q.err = errNotSent
			continue
		}
		if live == 0 || q.deadline.Before(deadline) {
			deadline = q.deadline
		}
		live++
	}
	if live == 0 {
		return
	}
	ctx := w.ctx.start(deadline)
	defer w.ctx.end()
	if live == 1 {
		for _, q := range batch {
			if q.err == nil {
				q.res, q.err = run(ctx, w.c, q)
			}
		}
		return
	}
	pipe := w.c.Pipeline()
	cmds := w.cmds[:0]
	for _, q := range batch {
		var cmd *redis.Cmd
		if q.err == nil {
			cmd = pipe.Do(ctx, q.cmd()...)
		}
		cmds = append(cmds, cmd)
	}
	_, perr := pipe.Exec(ctx)
	for i, q := range batch {
		if cmds[i] == nil {
			continue
		}
		q.res, q.err = cmds[i].Result()
		if q.res == nil && q.err == nil {
			// Not read: go-redis leaves the commands after a failed read
			// of the pipeline without an error (a reply is never nil
			// without redis.Nil).
			q.err = perr
			if q.err == nil {
				q.err = errors.New("redlock: no reply in the pipeline")
			}
		}
		if noScript(q.err) {
			// Not run: the node lost its scripts (a restart, SCRIPT FLUSH).
			q.res, q.err = run(ctx, w.c, q)
		}
		cmds[i] = nil
	}
	w.cmds = cmds[:0]
}

// run sends q by itself: EVALSHA, and if the node does not have the
// script, EVAL (which also caches it).
func run(ctx context.Context, c redis.UniversalClient, q *nodeReq) (any, error) {
	res, err := c.Do(ctx, q.cmd()...).Result()
	if noScript(err) {
		keys := make([]string, len(q.keys))
		for i, k := range q.keys {
			keys[i], _ = k.(string)
		}
		res, err = q.script.s.Eval(ctx, c, keys, q.args...).Result()
	}
	return res, err
}

// batchCtx is a worker's context for one batch, made once: go-redis bounds
// its socket reads and writes by the deadline, and its waits (for a pooled
// connection, between re-sends) by Done, which a timer closes if the
// deadline passes while the batch is out. context.WithDeadline would cost
// three allocations a batch; this costs none unless a batch times out.
type batchCtx struct {
	deadline time.Time   // set by start, before go-redis sees the context
	bt       *batchTimer // nil after a batch whose timer fired
	mu       sync.Mutex
	done     chan struct{} // guarded by mu: closed when the deadline passed
	err      error         // guarded by mu
}

// batchTimer closes its batchCtx's done at the deadline, unless it has
// been abandoned (dead, guarded by the batchCtx's mu).
type batchTimer struct {
	c    *batchCtx
	t    *time.Timer
	dead bool
}

func (bt *batchTimer) fire() {
	c := bt.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if !bt.dead && c.err == nil {
		c.err = context.DeadlineExceeded
		close(c.done)
	}
}

// start begins a batch due at deadline and returns its context.
func (c *batchCtx) start(deadline time.Time) context.Context {
	c.mu.Lock()
	if c.done == nil || c.err != nil {
		c.done, c.err = make(chan struct{}), nil
	}
	c.mu.Unlock()
	c.deadline = deadline
	if c.bt == nil {
		c.bt = &batchTimer{c: c}
		c.bt.t = time.AfterFunc(time.Until(deadline), c.bt.fire)
	} else {
		c.bt.t.Reset(time.Until(deadline))
	}
	return c
}

// end ends the batch that start began. A timer that fired (or is firing)
// is abandoned, so that it cannot end the next batch.
func (c *batchCtx) end() {
	if !c.bt.t.Stop() {
		c.mu.Lock()
		c.bt.dead = true
		c.mu.Unlock()
		c.bt = nil
	}
}

func (c *batchCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *batchCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done
}

func (c *batchCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *batchCtx) Value(any) any { return nil }

// noScript reports whether err is Redis's NOSCRIPT reply.
func noScript(err error) bool {
	if err == nil {
		return false
	}
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "NOSCRIPT")
}
