// Package proctest runs copies of the current test binary as worker
// processes, for tests that prove a property across OS processes: the
// parent test calls Run, and the worker is an ordinary test that returns at
// once unless IsWorker says this process was started to run it (the way the
// standard library's os/exec tests re-execute themselves).
package proctest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

const envWorker = "LOCKPROOF_PROCTEST_WORKER" // the worker test's name, in a worker

// IsWorker reports whether this process was started by Run to run the test
// named worker.
func IsWorker(worker string) bool { return os.Getenv(envWorker) == worker }

// Run starts n copies of the test binary, each running only the top-level
// test named worker with env ("NAME=value") added to its environment, and
// waits for all of them. A worker still running when ctx ends is killed.
// Run fails t, showing the worker's output, for every worker that failed.
func Run(ctx context.Context, t testing.TB, n int, worker string, env ...string) {
	t.Helper()
	args := []string{"-test.run=^" + worker + "$", "-test.count=1", "-test.v"}
	if d, ok := ctx.Deadline(); ok {
		args = append(args, "-test.timeout="+time.Until(d).String())
	}
	cmds := make([]*exec.Cmd, n)
	outs := make([]*bytes.Buffer, n)
	for i := range cmds {
		cmd := exec.CommandContext(ctx, os.Args[0], args...)
		cmd.Env = append(append(os.Environ(), envWorker+"="+worker), env...)
		outs[i] = new(bytes.Buffer)
		cmd.Stdout, cmd.Stderr = outs[i], outs[i]
		cmd.WaitDelay = 10 * time.Second // bounds Wait if a child leaves pipes open
		if err := cmd.Start(); err != nil {
			for _, started := range cmds[:i] {
				_ = started.Process.Kill()
				_ = started.Wait()
			}
			t.Fatalf("proctest: start worker %d: %v", i, err)
		}
		cmds[i] = cmd
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("proctest: worker %d: %v\n%s", i, err, outs[i])
		}
	}
	if ctx.Err() != nil {
		t.Fatalf("proctest: workers did not finish in time: %v", context.Cause(ctx))
	}
}
