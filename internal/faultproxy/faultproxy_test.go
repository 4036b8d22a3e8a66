package faultproxy_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lockproof/lockproof/internal/faultproxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// bound is a liveness bound for something expected to happen, never a
// latency assertion.
const bound = 10 * time.Second

// server is a line server: it answers each line "x" with "x\n" and
// records every line it received, so a test can tell a request that
// reached it from one that did not.
type server struct {
	l    net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	got  []string   // guarded by mu
	open []net.Conn // guarded by mu
	seen chan string
}

func newServer(t *testing.T) *server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{l: l, seen: make(chan string, 100)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.open = append(s.open, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					s.mu.Lock()
					s.got = append(s.got, line)
					s.mu.Unlock()
					s.seen <- line
					if _, err := io.WriteString(c, line); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		s.mu.Lock()
		for _, c := range s.open {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func newProxy(t *testing.T, target string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

type client struct {
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &client{c: c, r: bufio.NewReader(c)}
}

// call sends line and returns the answer, or the error after wait.
func (c *client) call(t *testing.T, line string, wait time.Duration) (string, error) {
	t.Helper()
	if _, err := io.WriteString(c.c, line); err != nil {
		return "", err
	}
	_ = c.c.SetReadDeadline(time.Now().Add(wait))
	return c.r.ReadString('\n')
}

// wantSeen waits for the server to receive line.
func (s *server) wantSeen(t *testing.T, line string) {
	t.Helper()
	select {
	case got := <-s.seen:
		if got != line {
			t.Fatalf("server received %q, want %q", got, line)
		}
	case <-time.After(bound):
		t.Fatalf("server did not receive %q", line)
	}
}

func (s *server) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

func TestPass(t *testing.T) {
	s := newServer(t)
	p := newProxy(t, s.l.Addr().String())
	c := dial(t, p.Addr())
	for _, line := range []string{"a\n", "b\n"} {
		got, err := c.call(t, line, bound)
		if err != nil || got != line {
			t.Fatalf("call %q = %q, %v", line, got, err)
		}
	}
	if n := p.Fired(); n != 0 {
		t.Fatalf("Fired = %d with no rules, want 0", n)
	}
}

// TestDropReply: the request reaches the server, its reply does not reach
// the client, the connection stays open, and the next reply passes.
func TestDropReply(t *testing.T) {
	s := newServer(t)
	p := newProxy(t, s.l.Addr().String())
	c := dial(t, p.Addr())
	p.Set(faultproxy.Rule{Dir: faultproxy.Downstream, Fault: faultproxy.Drop, Match: []byte("lost"), Times: 1})

	if got, err := c.call(t, "first\n", bound); err != nil || got != "first\n" {
		t.Fatalf("a request the rule does not match = %q, %v", got, err)
	}
	s.wantSeen(t, "first\n")
	_, err := c.call(t, "lost\n", 300*time.Millisecond)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read of a dropped reply = %v, want a timeout", err)
	}
	s.wantSeen(t, "lost\n")
	if got, err := c.call(t, "after\n", bound); err != nil || got != "after\n" {
		t.Fatalf("call after the dropped reply = %q, %v; want the connection to work", got, err)
	}
	if n := p.Fired(); n != 1 {
		t.Fatalf("Fired = %d, want 1", n)
	}
}

// TestResetAfterRequest: the request is executed, then the connection is
// reset instead of answering; new connections work.
func TestResetAfterRequest(t *testing.T) {
	s := newServer(t)
	p := newProxy(t, s.l.Addr().String())
	c := dial(t, p.Addr())
	var onFire atomic.Int32
	p.Set(faultproxy.Rule{Dir: faultproxy.Downstream, Fault: faultproxy.Reset, Match: []byte("boom"), Times: 1,
		OnFire: func() { onFire.Add(1) }})
	_, err := c.call(t, "boom\n", bound)
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after a reset = %v, want a connection error", err)
	}
	s.wantSeen(t, "boom\n")
	if n := onFire.Load(); n != 1 { // called before the reset reached the client
		t.Fatalf("OnFire called %d times, want 1", n)
	}
	c2 := dial(t, p.Addr())
	if got, err := c2.call(t, "boom\n", bound); err != nil || got != "boom\n" {
		t.Fatalf("after Times ran out = %q, %v; want a pass", got, err)
	}
}

// TestDropRequest: an Upstream drop keeps the request from the server.
func TestDropRequest(t *testing.T) {
	s := newServer(t)
	p := newProxy(t, s.l.Addr().String())
	c := dial(t, p.Addr())
	p.Set(faultproxy.Rule{Dir: faultproxy.Upstream, Fault: faultproxy.Drop, Match: []byte("never"), Times: 1})
	if _, err := c.call(t, "never\n", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("call with a dropped request = %v, want a timeout", err)
	}
	if got, err := c.call(t, "then\n", bound); err != nil || got != "then\n" {
		t.Fatalf("next call = %q, %v", got, err)
	}
	for _, line := range s.received() {
		if line == "never\n" {
			t.Fatalf("the server received the dropped request")
		}
	}
}

// TestDelayRequest: a delayed request reaches the server after the
// client gave up on it: the write that timed out still applies.
func TestDelayRequest(t *testing.T) {
	s := newServer(t)
	p := newProxy(t, s.l.Addr().String())
	c := dial(t, p.Addr())
	p.Set(faultproxy.Rule{Dir: faultproxy.Upstream, Fault: faultproxy.Delay, Delay: 500 * time.Millisecond, Times: 1})
	if _, err := c.call(t, "late\n", 10*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Skipf("the client read the delayed reply within 10ms (%v): the machine is too slow for this check", err)
	}
	s.wantSeen(t, "late\n") // afterwards
}

// TestBlackHoleAndClear: a black hole answers nothing; Clear restores
// the same connection.
func TestBlackHoleAndClear(t *testing.T) {
	s := newServer(t)
	p := newProxy(t, s.l.Addr().String())
	c := dial(t, p.Addr())
	p.BlackHole()
	if _, err := c.call(t, "x\n", 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("call into a black hole = %v, want a timeout", err)
	}
	if n := len(s.received()); n != 0 {
		t.Fatalf("server received %d lines through a black hole", n)
	}
	p.Clear()
	if got, err := c.call(t, "y\n", bound); err != nil || got != "y\n" {
		t.Fatalf("after Clear = %q, %v", got, err)
	}
}

// TestResetAll and Close: open connections end; Close stops every
// goroutine (goleak in TestMain) even with a chunk held by Delay.
func TestResetAllAndClose(t *testing.T) {
	s := newServer(t)
	p := newProxy(t, s.l.Addr().String())
	c := dial(t, p.Addr())
	if _, err := c.call(t, "a\n", bound); err != nil {
		t.Fatal(err)
	}
	p.ResetAll()
	if _, err := c.call(t, "b\n", bound); err == nil {
		t.Fatalf("call after ResetAll succeeded")
	}

	c2 := dial(t, p.Addr())
	p.Set(faultproxy.Rule{Dir: faultproxy.Upstream, Fault: faultproxy.Delay, Delay: time.Hour})
	if _, err := io.WriteString(c2.c, "held\n"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(bound); p.Fired() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the delay rule never fired")
		}
		time.Sleep(time.Millisecond)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Fatalf("dial after Close succeeded")
	}
}

// TestDialFailure: a proxy whose target is down resets its clients.
func TestDialFailure(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	p := newProxy(t, addr)
	conn, err := net.Dial("tcp", p.Addr())
	if err != nil {
		return // reset during the handshake: as good
	}
	defer conn.Close()
	c := &client{c: conn, r: bufio.NewReader(conn)}
	if _, err := c.call(t, "x\n", bound); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("call through a proxy to a dead target = %v, want a connection error", err)
	}
}
