// Package pgtest starts real PostgreSQL servers for tests.
//
// A server is a fresh cluster: initdb into a new temporary directory, then
// postgres listening on a free loopback port (and a Unix socket in the same
// directory), with durability switched off (fsync, synchronous_commit and
// full_page_writes off) because test data need not survive a machine crash.
// PostgreSQL refuses to run as root, so when the tests run as root both
// programs run as the unprivileged user "postgres" and the directory is
// handed to that user. On Linux the server also receives SIGKILL when the
// test binary dies, so none outlives it.
//
// The binaries are looked up on PATH, then in /usr/lib/postgresql/*/bin
// (where Debian installs them). Without them the test is skipped, with a
// message saying how to install PostgreSQL, or fails when the environment
// variable LOCKPROOF_POSTGRES is "required" (as in CI).
//
// One server per test package is the usual form: [Shared] starts it on
// first use, and [Main] stops it after the package's tests:
//
//	func TestMain(m *testing.M) {
//		goleak.VerifyTestMain(pgtest.Main(m))
//	}
//
//	func TestX(t *testing.T) {
//		dsn := pgtest.Shared(t).DSN()
//		...
//	}
//
// A test that stops or restarts its server starts its own with [New].
package pgtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Timeouts for process start and stop.
const (
	readyTimeout = 30 * time.Second // until a started server accepts connections
	stopTimeout  = 15 * time.Second // after SIGINT (fast shutdown), before SIGKILL
)

const readyLine = "database system is ready to accept connections"

// Bin returns the directory holding initdb and postgres, or an error saying
// where it looked.
func Bin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Sort(sort.Reverse(sort.StringSlice(dirs))) // newest major first
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("pgtest: initdb not found on PATH nor in /usr/lib/postgresql/*/bin")
}

// Require returns the directory of the PostgreSQL binaries. Without them it
// skips the test, or fails it when LOCKPROOF_POSTGRES=required.
func Require(t testing.TB) string {
	t.Helper()
	dir, err := Bin()
	if err == nil {
		return dir
	}
	if os.Getenv("LOCKPROOF_POSTGRES") == "required" {
		t.Fatalf("%v, and LOCKPROOF_POSTGRES=required", err)
	}
	t.Skip("PostgreSQL not found; install it (apt-get install -y postgresql) or set LOCKPROOF_POSTGRES=required to make this a failure")
	return ""
}

// Server is one PostgreSQL cluster and its postgres process. Its port stays
// the same across [Server.Stop], [Server.Start] and [Server.Restart].
type Server struct {
	bin  string
	dir  string // holds data/ and the socket; removed by Close
	port int
	cred *syscall.Credential // nil unless running as root

	mu   sync.Mutex    // guards cmd and done
	cmd  *exec.Cmd     // the running postmaster; nil when stopped
	done chan struct{} // closed once cmd has been reaped
}

// New starts a server of its own for t and stops it, removing its files,
// in t.Cleanup. It fails t if the server does not start.
func New(t testing.TB) *Server {
	t.Helper()
	s, err := start(Require(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("postgres log:\n%s", s.Log())
		}
		if err := s.Close(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s
}

var shared struct {
	mu  sync.Mutex // guards s and err
	s   *Server
	err error
}

// Shared returns the package's shared server, starting it on first use. It
// is stopped by the TestingM returned by [Main]; every test using it must
// use its own tables or rows.
func Shared(t testing.TB) *Server {
	t.Helper()
	bin := Require(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.s == nil && shared.err == nil {
		shared.s, shared.err = start(bin)
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.s
}

// TestingM is what testing.M and goleak.VerifyTestMain agree on.
type TestingM interface{ Run() int }

// Main wraps m so that the shared server, if one was started, is stopped
// after the tests have run. Pass the result to goleak.VerifyTestMain or call
// its Run and os.Exit.
func Main(m TestingM) TestingM { return mainM{m} }

type mainM struct{ m TestingM }

func (w mainM) Run() int {
	code := w.m.Run()
	shared.mu.Lock()
	s := shared.s
	shared.s, shared.err = nil, errors.New("pgtest: shared server already stopped")
	shared.mu.Unlock()
	if s != nil {
		if err := s.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

func start(bin string) (*Server, error) {
	s := &Server{bin: bin}
	var err error
	if s.dir, err = os.MkdirTemp("", "lockproof-pgtest-"); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if os.Geteuid() == 0 {
		if s.cred, err = postgresUser(); err != nil {
			_ = os.RemoveAll(s.dir)
			return nil, err
		}
		if err := os.Chown(s.dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			_ = os.RemoveAll(s.dir)
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	initdb := s.command("initdb", "-D", s.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		_ = os.RemoveAll(s.dir)
		return nil, fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	for attempt := 0; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			_ = os.RemoveAll(s.dir)
			return nil, err
		}
		err = s.Start()
		if err == nil {
			return s, nil
		}
		if attempt == 2 || !strings.Contains(s.Log(), "could not bind") {
			_ = os.RemoveAll(s.dir)
			return nil, err
		}
	}
}

func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root, and PostgreSQL must run as an unprivileged user: %w (create a user named postgres)", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("pgtest: user postgres: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) data() string    { return filepath.Join(s.dir, "data") }
func (s *Server) logPath() string { return filepath.Join(s.dir, "postgres.log") }

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.SysProcAttr = sysProcAttr()
	if s.cred != nil {
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = new(syscall.SysProcAttr)
		}
		cmd.SysProcAttr.Credential = s.cred
	}
	return cmd
}

// Port returns the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Addr returns "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// DSN returns a connection URL for the superuser postgres and the database
// postgres, without TLS.
func (s *Server) DSN() string {
	return "postgres://postgres@" + s.Addr() + "/postgres?sslmode=disable"
}

// Log returns the server's log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logPath())
	return string(b)
}

// Start starts postgres if it is stopped and waits until it accepts
// connections. A server returned by New or Shared is already started.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o666)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer logf.Close()
	before, _ := logf.Seek(0, 2)
	cmd := s.command("postgres", "-D", s.data(), "-p", strconv.Itoa(s.port), "-k", s.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "shared_buffers=32MB")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() { // owned by the server: ends when postgres exits, reaped by stop
		_ = cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(readyTimeout)
	for {
		b, _ := os.ReadFile(s.logPath())
		if int64(len(b)) > before && bytes.Contains(b[before:], []byte(readyLine)) {
			s.cmd, s.done = cmd, done
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("pgtest: postgres exited during start:\n%s", b[min(before, int64(len(b))):])
		case <-time.After(20 * time.Millisecond): // polling a log file; no event to wait on
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("pgtest: postgres not ready after %v:\n%s", readyTimeout, b[min(before, int64(len(b))):])
		}
	}
}

// Stop shuts postgres down ("fast": clients are disconnected, transactions
// rolled back) and waits for it to exit. Stopping a stopped server does
// nothing.
func (s *Server) Stop() error { return s.stop(syscall.SIGINT) }

// Kill stops postgres with "immediate" shutdown (SIGQUIT: no checkpoint,
// crash recovery at the next start), the nearest to a crash that still
// takes its child processes along.
func (s *Server) Kill() error { return s.stop(syscall.SIGQUIT) }

// Restart is Stop then Start.
func (s *Server) Restart() error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.Start()
}

func (s *Server) stop(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(sig)
	var err error
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.done
		err = fmt.Errorf("pgtest: postgres did not stop within %v; killed", stopTimeout)
	}
	s.cmd, s.done = nil, nil
	return err
}

// Close stops the server and removes its files.
func (s *Server) Close() error {
	err := s.Stop()
	return errors.Join(err, os.RemoveAll(s.dir))
}

// StartServer starts a server outside a test (the bench command uses it),
// with the binaries [Bin] finds; the caller stops it with [Server.Close].
func StartServer() (*Server, error) {
	bin, err := Bin()
	if err != nil {
		return nil, err
	}
	return start(bin)
}
