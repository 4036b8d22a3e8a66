package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/lockproof/lockproof/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(redistest.Reporting(m)) }

func runRefund(t *testing.T, args ...string) {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), args, &out); err != nil {
		t.Fatalf("refund %v: %v\n%s", args, err, out.String())
	}
	if !strings.Contains(out.String(), "every order refunded exactly once") {
		t.Fatalf("refund %v did not report its check:\n%s", args, out.String())
	}
}

func TestMemory(t *testing.T) { runRefund(t) }

func TestRedis(t *testing.T) {
	runRefund(t, "-redis", redistest.Server(t).Addr(), "-orders", "20")
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-orders", "0"}, {"-retries", "0"}} {
		if err := run(context.Background(), args, &bytes.Buffer{}); err == nil {
			t.Errorf("refund %v: no error", args)
		}
	}
}
