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

func runHandoff(t *testing.T, args ...string) {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), args, &out); err != nil {
		t.Fatalf("handoff %v: %v\n%s", args, err, out.String())
	}
	if !strings.Contains(out.String(), "done exactly once") {
		t.Fatalf("handoff %v did not report its check:\n%s", args, out.String())
	}
}

func TestMemory(t *testing.T) { runHandoff(t) }

func TestRedis(t *testing.T) { runHandoff(t, "-redis", redistest.Server(t).Addr()) }

func TestBadFlags(t *testing.T) {
	if err := run(context.Background(), []string{"-jobs", "0"}, &bytes.Buffer{}); err == nil {
		t.Error("handoff -jobs 0: no error")
	}
}
