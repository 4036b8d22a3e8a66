package redistest

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// skippedTests holds the names of the tests that Require skipped in this
// process (a set: a test that starts several servers counts once).
var skippedTests sync.Map

func noteSkip(t testing.TB) { skippedTests.Store(t.Name(), struct{}{}) }

// Skipped returns how many tests Require has skipped so far in this
// process because redis-server is not on PATH.
func Skipped() int {
	n := 0
	skippedTests.Range(func(any, any) bool { n++; return true })
	return n
}

// TestingM is what Reporting wraps: a *testing.M. It is also what
// goleak.VerifyTestMain takes, so the two compose.
type TestingM interface{ Run() int }

// Reporting wraps m so that, after the tests ran, a package whose Redis
// tests were skipped says so even in a plain `go test ./...`:
//
//	func TestMain(m *testing.M) { goleak.VerifyTestMain(redistest.Reporting(m)) }
//
// prints, when redis-server is missing,
//
//	redistest: github.com/lockproof/lockproof/container: tests SKIPPED: 9, redis-server not found (...)
//	ok  	github.com/lockproof/lockproof/container	0.02s
//
// and nothing extra when the Redis tests ran.
//
// Why this is needed, and how it works: for a passing package, go test in
// package-list mode discards the test binary's output (stdout and stderr
// both) and prints only its "ok" line, so no t.Log, t.Skip or print in a
// test can reach that output. Reporting therefore writes the line to the
// go command's own standard output, /proc/<parent>/fd/1, when that is a
// pipe or a terminal (CI logs, shells). It does not write there when the
// output is a regular file (the go command writes to it at its own
// offset, so an appended line would be overwritten), in -v or -json runs
// (the "--- SKIP" lines are in the output already, and a stray line would
// break the JSON stream), or off Linux; the line is always also printed
// to the test binary's own output, where -v and failures show it. A
// cached result ("(cached)") replays no output, so it shows no line
// either: use -count=1, or LOCKPROOF_REDIS=required to make a missing
// redis-server a failure.
func Reporting(m TestingM) TestingM {
	pkg := "tests"
	if pc, _, _, ok := runtime.Caller(1); ok {
		if fn := runtime.FuncForPC(pc); fn != nil {
			pkg = packageOf(fn.Name())
		}
	}
	return reporting{m: m, pkg: pkg}
}

type reporting struct {
	m   TestingM
	pkg string
}

func (r reporting) Run() int {
	code := r.m.Run()
	if n := Skipped(); n > 0 {
		announce(fmt.Sprintf("redistest: %s: tests SKIPPED: %d, redis-server not found (install it, or set LOCKPROOF_REDIS=required to fail instead)", r.pkg, n))
	}
	return code
}

// packageOf returns the import path in a function name such as
// "github.com/x/y/pkg_test.TestMain".
func packageOf(fn string) string {
	slash := strings.LastIndexByte(fn, '/')
	if dot := strings.IndexByte(fn[slash+1:], '.'); dot >= 0 {
		fn = fn[:slash+1+dot]
	}
	return strings.TrimSuffix(fn, "_test")
}

// announce prints line to the test output and, in a plain go test run, to
// the go command's output (see Reporting).
func announce(line string) {
	fmt.Println(line)
	if testing.Verbose() {
		return
	}
	if w := goCommandOutput(); w != nil {
		_, _ = io.WriteString(w, line+"\n") // best effort: the line is in the test output too
		_ = w.Close()
	}
}

// goCommandOutput opens the standard output of the parent process (the go
// command) for appending, if it is a pipe or a terminal other than this
// process's own standard output; otherwise it returns nil.
func goCommandOutput() *os.File {
	if runtime.GOOS != "linux" {
		return nil
	}
	f, err := os.OpenFile("/proc/"+strconv.Itoa(os.Getppid())+"/fd/1", os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil
	}
	fi, err := f.Stat()
	own, oerr := os.Stdout.Stat()
	if err != nil || oerr != nil || fi.Mode()&(os.ModeNamedPipe|os.ModeCharDevice) == 0 || os.SameFile(fi, own) {
		_ = f.Close()
		return nil
	}
	return f
}
