package pgtest_test

import (
	"net"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/lockproof/lockproof/internal/pgtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(pgtest.Main(m))
}

func dial(addr string) error {
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
	}
	return err
}

// TestStopStart: a server accepts connections, refuses them once stopped,
// and accepts them again on the same port after Start.
func TestStopStart(t *testing.T) {
	s := pgtest.New(t)
	if err := dial(s.Addr()); err != nil {
		t.Fatalf("dial a started server: %v", err)
	}
	if !strings.Contains(s.DSN(), s.Addr()) {
		t.Errorf("DSN %q does not name %s", s.DSN(), s.Addr())
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := dial(s.Addr()); err == nil {
		t.Fatal("dial a stopped server succeeded")
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := dial(s.Addr()); err != nil {
		t.Fatalf("dial a restarted server: %v", err)
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatalf("start after Kill (crash recovery): %v", err)
	}
	if err := dial(s.Addr()); err != nil {
		t.Fatalf("dial after crash recovery: %v", err)
	}
}

// TestShared: Shared returns one server per package.
func TestShared(t *testing.T) {
	a, b := pgtest.Shared(t), pgtest.Shared(t)
	if a != b {
		t.Fatal("Shared started two servers")
	}
	if err := dial(a.Addr()); err != nil {
		t.Fatal(err)
	}
}
