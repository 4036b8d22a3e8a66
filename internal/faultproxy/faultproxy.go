// Package faultproxy is a fault-injecting TCP proxy for tests: it sits
// between a client (go-redis) and a real server (redis-server) and, per
// direction and switchable at run time, passes, drops, delays or resets
// the bytes that cross it.
//
// Each accepted connection is forwarded to the target over a connection of
// its own. A [Rule] applies to one direction: Upstream carries requests
// (client to server), Downstream replies. With Match set, an Upstream rule
// applies to a chunk that contains Match, and a Downstream rule to the
// first reply chunk after such a request on the same connection: "lose the
// reply of the request naming key K" is
//
//	p.Set(faultproxy.Rule{Dir: faultproxy.Downstream, Fault: faultproxy.Reset, Match: []byte(K), Times: 1})
//
// The proxy owns its goroutines (an accept loop and two pumps per
// connection); Close stops them all and waits for them.
package faultproxy

import (
	"bytes"
	"net"
	"sync"
	"time"
)

// Direction is the way bytes travel through the proxy.
type Direction int

const (
	// Upstream is client to server: requests.
	Upstream Direction = iota
	// Downstream is server to client: replies.
	Downstream
)

// Fault is what happens to a chunk that a rule applies to.
type Fault int

const (
	// Pass forwards the chunk (the rule only counts).
	Pass Fault = iota
	// Drop discards the chunk and keeps the connection open: a lost reply
	// whose client waits for it, or, for every chunk in both directions, a
	// black-holed server.
	Drop
	// Delay forwards the chunk after Rule.Delay; later chunks of the same
	// connection and direction wait behind it.
	Delay
	// Reset discards the chunk and resets both connections (TCP RST): a
	// reply lost with its connection.
	Reset
)

// Rule is a fault for one direction.
type Rule struct {
	Dir   Direction
	Fault Fault
	// Delay is how long Delay holds a chunk.
	Delay time.Duration
	// Match, if not nil, restricts the rule: see the package documentation.
	Match []byte
	// Times is how many chunks the rule applies to before it is cleared;
	// 0 means until Set or Clear replaces it.
	Times int
	// OnFire, if not nil, is called each time the rule applies, before the
	// fault acts and on the connection's own goroutine: a test can change
	// the server's state between a request's execution and its lost reply.
	OnFire func()
}

// Proxy is a running proxy. Create one with New; it is safe for
// concurrent use.
type Proxy struct {
	target string
	l      net.Listener
	done   chan struct{} // closed by Close
	wg     sync.WaitGroup

	mu sync.Mutex
	// rules, conns, fired and closed are guarded by mu.
	rules  [2]*Rule // by Direction; nil passes
	conns  map[*pair]struct{}
	fired  int
	closed bool
}

// pair is one proxied connection: the client's and the server's side.
type pair struct {
	client, server net.Conn
	// armed is set when a request matched the Downstream rule's Match: the
	// next reply chunk is the rule's. Guarded by Proxy.mu.
	armed bool
	once  sync.Once
}

// New starts a proxy on a free loopback port that forwards to target.
func New(target string) (*Proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, l: l, done: make(chan struct{}), conns: make(map[*pair]struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the address clients dial.
func (p *Proxy) Addr() string { return p.l.Addr().String() }

// Set installs r for its direction, replacing the previous rule there.
func (p *Proxy) Set(r Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r.Match = bytes.Clone(r.Match)
	p.rules[r.Dir] = &r
	for c := range p.conns {
		c.armed = false
	}
}

// Clear removes the rules of both directions: everything passes.
func (p *Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = [2]*Rule{}
}

// BlackHole drops everything in both directions, keeping connections open:
// a hung server. Clear ends it.
func (p *Proxy) BlackHole() {
	p.Set(Rule{Dir: Upstream, Fault: Drop})
	p.Set(Rule{Dir: Downstream, Fault: Drop})
}

// Fired returns how many chunks rules have applied to so far, so a test can
// check that its fault really happened.
func (p *Proxy) Fired() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fired
}

// ResetAll resets every open connection.
func (p *Proxy) ResetAll() {
	p.mu.Lock()
	cs := make([]*pair, 0, len(p.conns))
	for c := range p.conns {
		cs = append(cs, c)
	}
	p.mu.Unlock()
	for _, c := range cs {
		c.close(true)
	}
}

// Close stops listening, closes every connection and waits until all the
// proxy's goroutines have returned. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	cs := make([]*pair, 0, len(p.conns))
	for c := range p.conns {
		cs = append(cs, c)
	}
	p.mu.Unlock()
	err := p.l.Close()
	for _, c := range cs {
		c.close(false)
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.l.Accept()
		if err != nil {
			return // closed
		}
		server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			resetConn(client)
			continue
		}
		c := &pair{client: client, server: server}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.close(false)
			return
		}
		p.conns[c] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pump(c, Upstream)
		go p.pump(c, Downstream)
	}
}

// pump copies one direction of c, applying the rules, until either side
// fails or the proxy closes.
func (p *Proxy) pump(c *pair, dir Direction) {
	defer p.wg.Done()
	defer func() {
		c.close(false)
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	from, to := c.client, c.server
	if dir == Downstream {
		from, to = c.server, c.client
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			fault, delay, onFire := p.apply(c, dir, buf[:n])
			if onFire != nil {
				onFire()
			}
			switch fault {
			case Drop:
				continue
			case Reset:
				c.close(true)
				return
			case Delay:
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-p.done:
					t.Stop()
					return
				}
			}
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF or closed: the deferred close ends the other pump
		}
	}
}

// apply returns the fault for chunk b travelling dir on c, with its delay
// and OnFire, and counts it.
func (p *Proxy) apply(c *pair, dir Direction, b []byte) (Fault, time.Duration, func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if dir == Upstream {
		if d := p.rules[Downstream]; d != nil && d.Match != nil && bytes.Contains(b, d.Match) {
			c.armed = true
		}
	}
	r := p.rules[dir]
	if r == nil {
		return Pass, 0, nil
	}
	if r.Match != nil {
		switch {
		case dir == Upstream && !bytes.Contains(b, r.Match):
			return Pass, 0, nil
		case dir == Downstream && !c.armed:
			return Pass, 0, nil
		}
		c.armed = false
	}
	p.fired++
	if r.Times > 0 {
		r.Times--
		if r.Times == 0 {
			p.rules[dir] = nil
		}
	}
	return r.Fault, r.Delay, r.OnFire
}

// close closes both sides once; with reset, with a TCP RST.
func (c *pair) close(reset bool) {
	c.once.Do(func() {
		if reset {
			resetConn(c.client)
			resetConn(c.server)
			return
		}
		_ = c.client.Close()
		_ = c.server.Close()
	})
}

// resetConn closes conn with an RST rather than a FIN where it can.
func resetConn(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
