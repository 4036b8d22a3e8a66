// Package redistest starts real redis-server processes for tests.
//
// Each server listens on a free loopback port, keeps no data on disk
// (--save "" --appendonly no), writes its log to a file in its own
// t.TempDir(), and is stopped and reaped in t.Cleanup. On Linux a server
// also receives SIGKILL when the test binary dies, so none outlives it.
//
// Every constructor calls [Require] first: without redis-server on PATH the
// test is skipped, or fails when the environment variable LOCKPROOF_REDIS is
// "required" (as in CI).
//
//	func TestLock(t *testing.T) {
//		rdb := redistest.Server(t).Client(t)
//		...
//	}
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Timeouts for process start and stop.
const (
	readyTimeout = 10 * time.Second // until a started server answers PING
	stopTimeout  = 10 * time.Second // after SIGTERM, before SIGKILL
)

// errAddrInUse reports that redis-server could not bind its port, which
// another process took between our probe and its start.
var errAddrInUse = errors.New("redistest: address already in use")

// Require returns the path of redis-server. If it is not on PATH, Require
// skips the test, or fails it when LOCKPROOF_REDIS=required.
func Require(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err == nil {
		return path
	}
	if os.Getenv("LOCKPROOF_REDIS") == "required" {
		t.Fatalf("redis-server not found on PATH, and LOCKPROOF_REDIS=required: %v", err)
	}
	noteSkip(t)
	t.Skip("redis-server not found; install it (apt-get install -y redis-server) or set LOCKPROOF_REDIS=required to make this a failure")
	return ""
}

// Option configures the servers started by [Server], [Servers] and [Cluster].
type Option func(*config)

type config struct {
	args    []string // extra redis-server arguments
	busPort bool     // pick a second port for --cluster-port
	conf    string   // config file contents, passed first; for Sentinel
}

// Args appends extra redis-server arguments, such as
// Args("--maxmemory", "10mb"). The default is none.
func Args(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// AOFAlways makes a server log every write to its append-only file,
// fsynced before the reply, so a SIGKILL loses nothing it has answered.
var AOFAlways = Args("--appendonly", "yes", "--appendfsync", "always")

// Node is one redis-server process. Its address stays the same for the whole
// test, across [Node.Kill], [Node.Stop], [Node.Start] and [Node.Restart].
// It is stopped in t.Cleanup of the test that created it.
type Node struct {
	bin     string
	dir     string   // the server's --dir and log file
	port    int      // set before Server returns, then fixed
	busPort int      // --cluster-port if config.busPort, else 0; fixed likewise
	conf    string   // config file path, before all arguments; "" for none
	args    []string // full argument list, without the port

	mu       sync.Mutex    // guards cmd, done and logShown
	cmd      *exec.Cmd     // the running process; nil when stopped
	done     chan struct{} // closed once cmd has been reaped
	logShown bool          // a start error has already shown the log
}

// Server starts a redis-server on a free loopback port and waits until it
// answers PING. It fails the test if the server does not start within 10s.
func Server(t testing.TB, opts ...Option) *Node {
	t.Helper()
	var c config
	for _, o := range opts {
		o(&c)
	}
	n := &Node{bin: Require(t), dir: t.TempDir()}
	if c.conf != "" {
		n.conf = filepath.Join(n.dir, "redis.conf")
		if err := os.WriteFile(n.conf, []byte(c.conf), 0o644); err != nil {
			t.Fatalf("redistest: %v", err)
		}
	}
	// Registered after t.TempDir, so it runs before the directory is removed.
	t.Cleanup(func() {
		if err := n.stop(); err != nil {
			t.Errorf("redistest: stop %s: %v", n.Addr(), err)
		}
		n.mu.Lock()
		shown := n.logShown
		n.mu.Unlock()
		if t.Failed() && !shown {
			t.Logf("redis-server %s log:\n%s", n.Addr(), n.log())
		}
	})
	var err error
	for range 5 { // another process may take a probed port first
		n.port = freePort(t)
		n.args = []string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", n.dir}
		if c.busPort {
			n.busPort = freePort(t)
			n.args = append(n.args, "--cluster-port", strconv.Itoa(n.busPort))
		}
		n.args = append(n.args, c.args...)
		n.mu.Lock()
		err = n.start()
		n.mu.Unlock()
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	if err != nil {
		t.Fatalf("redistest: start redis-server: %v", err)
	}
	return n
}

// Servers starts n independent servers, as for Redlock quorum tests.
func Servers(t testing.TB, n int, opts ...Option) []*Node {
	t.Helper()
	nodes := make([]*Node, n)
	for i := range nodes {
		nodes[i] = Server(t, opts...)
	}
	return nodes
}

// Addr returns the server's "host:port".
func (n *Node) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port))
}

// Client returns a client of the server, closed in t.Cleanup.
func (n *Node) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: n.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Kill sends SIGKILL, as in a crash, and waits until the process is reaped
// and its port refuses connections. Killing a stopped node does nothing.
func (n *Node) Kill(t testing.TB) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.kill()
	deadline := time.Now().Add(stopTimeout)
	for {
		conn, err := net.DialTimeout("tcp", n.Addr(), 200*time.Millisecond)
		if err != nil {
			return
		}
		_ = conn.Close()
		if time.Now().After(deadline) {
			t.Fatalf("redistest: %s still accepts connections after SIGKILL", n.Addr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop shuts the server down with SIGTERM, then SIGKILL if it has not
// exited after 10s. Stopping a stopped node does nothing.
func (n *Node) Stop(t testing.TB) {
	t.Helper()
	if err := n.stop(); err != nil {
		t.Fatalf("redistest: stop %s: %v", n.Addr(), err)
	}
}

// Crash kills n with SIGKILL and starts it again on the same port and
// directory: what a server with persistence keeps, it has again.
func (n *Node) Crash(t testing.TB) {
	t.Helper()
	n.Kill(t)
	n.Start(t)
}

// Start starts a stopped or killed server again on the same port with the
// same arguments, and waits until it answers PING. Without persistence it
// starts empty. Start fails the test if the node is running.
func (n *Node) Start(t testing.TB) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		t.Fatalf("redistest: start %s: already running", n.Addr())
	}
	var err error
	for range 5 { // a killed server's port may take a moment to free up
		if err = n.start(); !errors.Is(err, errAddrInUse) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("redistest: restart %s: %v", n.Addr(), err)
	}
}

// Restart stops the server if it is running, then starts it as [Node.Start].
func (n *Node) Restart(t testing.TB) {
	t.Helper()
	n.Stop(t)
	n.Start(t)
}

// start runs redis-server and waits for PING. n.mu must be held.
func (n *Node) start() error {
	logf, err := os.OpenFile(n.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own copy
	info, err := logf.Stat()
	if err != nil {
		return err
	}
	args := append([]string{"--port", strconv.Itoa(n.port)}, n.args...)
	if n.conf != "" {
		args = append([]string{n.conf}, args...)
	}
	cmd := exec.Command(n.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf // files, so exec starts no copying goroutines
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { // ends when the process exits; stop and kill wait for it
		_ = cmd.Wait()
		close(done)
	}()
	n.cmd, n.done = cmd, done
	if err := waitReady(n.Addr(), done); err != nil {
		n.kill()
		if b, _ := os.ReadFile(n.logPath()); int64(len(b)) > info.Size() &&
			strings.Contains(string(b[info.Size():]), "Address already in use") {
			err = errors.Join(errAddrInUse, err)
		}
		n.logShown = true
		return fmt.Errorf("%w\nredis-server log:\n%s", err, n.log())
	}
	n.logShown = false
	return nil
}

// stop sends SIGTERM, then SIGKILL after stopTimeout, and waits until the
// process has been reaped.
func (n *Node) stop() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return nil
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
		n.cmd, n.done = nil, nil
		return nil
	case <-time.After(stopTimeout):
		n.kill()
		return fmt.Errorf("no exit %v after SIGTERM; killed", stopTimeout)
	}
}

// kill sends SIGKILL and waits until the process has been reaped.
// n.mu must be held.
func (n *Node) kill() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill() // fails only if it has exited already
	<-n.done
	n.cmd, n.done = nil, nil
}

func (n *Node) logPath() string { return filepath.Join(n.dir, "redis.log") }

// log returns the end of the server's log file, for failure messages.
func (n *Node) log() string {
	const max = 8 << 10
	b, err := os.ReadFile(n.logPath())
	if err != nil {
		return err.Error()
	}
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitReady polls addr with PING until it answers PONG, the process exits
// (done is closed), or readyTimeout passes.
func waitReady(addr string, done <-chan struct{}) error {
	deadline := time.Now().Add(readyTimeout)
	var err error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return errors.New("redis-server exited during startup")
		default:
		}
		if err = ping(addr); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no PONG from %s within %v: %w", addr, readyTimeout, err)
}

// ping sends one PING in the Redis protocol, without a client library.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING: %q", strings.TrimSpace(line)) // e.g. -LOADING
	}
	return nil
}

// ScriptCalls returns how many scripts the server behind c has run
// (EVALSHA and EVAL calls, from INFO commandstats), so that a test can tell
// a request the client re-sent (two executions) from one that ran once.
func ScriptCalls(t testing.TB, c redis.UniversalClient) int {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(info, "\n") {
		for _, cmd := range []string{"cmdstat_evalsha:calls=", "cmdstat_eval:calls="} {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), cmd); ok {
				v, _, _ := strings.Cut(rest, ",")
				k, err := strconv.Atoi(v)
				if err != nil {
					t.Fatalf("INFO commandstats line %q: %v", line, err)
				}
				n += k
			}
		}
	}
	return n
}
