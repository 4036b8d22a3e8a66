package history_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lockproof/lockproof/internal/history"
	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/repository"
)

const checkTimeout = 10 * time.Second

// load, save and read build entries of synthetic histories.
func load(proc, cycle int, read int64, call, ret int64) history.Entry {
	return history.Entry{Process: proc, Cycle: cycle, Op: history.Load, Output: read, Outcome: history.OK, Call: call, Return: ret}
}

func save(proc, cycle int, write int64, o history.Outcome, call, ret int64) history.Entry {
	return history.Entry{Process: proc, Cycle: cycle, Op: history.Save, Input: write, Outcome: o, Call: call, Return: ret}
}

func read(n int64, at int64) history.Entry {
	return history.Entry{Process: 0, Op: history.Read, Output: n, Outcome: history.OK, Call: at, Return: at + 1}
}

// serial is a history of cycles one after another, each loading the
// counter and saving it plus one with the given outcome; the counter moves
// only on ok saves, or on unknown ones listed in appliedUnknown.
func serial(outcomes []history.Outcome, appliedUnknown map[int]bool) ([]history.Entry, int64) {
	var es []history.Entry
	var n, t int64
	for i, o := range outcomes {
		proc := 1 + i%3
		es = append(es, load(proc, i, n, t, t+10), save(proc, i, n+1, o, t+10, t+20))
		if o == history.OK || (o == history.Unknown && appliedUnknown[i]) {
			n++
		}
		t += 30
	}
	return append(es, read(n, t)), n
}

func wantOK(t *testing.T, es []history.Entry, initial int64) *history.Result {
	t.Helper()
	r := history.Check(es, initial, checkTimeout)
	if !r.OK() {
		t.Fatalf("Check of a correct history: %s\nproblems:\n  %s", r, strings.Join(r.Problems, "\n  "))
	}
	return r
}

// wantProblems fails t unless Check finds problems containing each of the
// substrings.
func wantProblems(t *testing.T, es []history.Entry, initial int64, substrings ...string) *history.Result {
	t.Helper()
	r := history.Check(es, initial, checkTimeout)
	if r.OK() {
		t.Fatalf("Check of a wrong history found no problem: %s", r)
	}
	all := strings.Join(r.Problems, "\n")
	for _, s := range substrings {
		if !strings.Contains(all, s) {
			t.Errorf("problems do not mention %q:\n%s", s, all)
		}
	}
	return r
}

func TestCorrectHistories(t *testing.T) {
	ok, ref, unav, unk := history.OK, history.Refused, history.Unavailable, history.Unknown
	tests := []struct {
		name     string
		outcomes []history.Outcome
		applied  map[int]bool // unknown saves that took effect
	}{
		{"AllApplied", []history.Outcome{ok, ok, ok, ok, ok, ok}, nil},
		{"RefusedAndUnavailable", []history.Outcome{ok, ref, ok, unav, unav, ok}, nil},
		{"UnknownApplied", []history.Outcome{ok, unk, ok, unk}, map[int]bool{1: true, 3: true}},
		{"UnknownNotApplied", []history.Outcome{ok, unk, ok, unk}, nil},
		{"UnknownMixed", []history.Outcome{unk, unk, ok, unk, unk}, map[int]bool{0: true, 3: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			es, final := serial(tc.outcomes, tc.applied)
			r := wantOK(t, es, 0)
			if r.Final != final || r.Checked != "Ok" {
				t.Fatalf("Result %s: want final %d and porcupine Ok", r, final)
			}
		})
	}

	// An unknown save may take effect after it returned, before its
	// apply_by, e.g. when the next holder loads.
	t.Run("UnknownAppliedLate", func(t *testing.T) {
		s := save(1, 0, 1, history.Unknown, 10, 20)
		s.ApplyBy = 45
		es := []history.Entry{
			load(1, 0, 0, 0, 10), s,
			load(2, 1, 0, 30, 35), // before the late apply
			load(3, 2, 1, 40, 50), // after it; its lease started before apply_by
			save(3, 2, 2, history.OK, 50, 60),
			read(2, 70),
		}
		wantOK(t, es, 0)
	})

	// The initial value counts.
	t.Run("Initial", func(t *testing.T) {
		es := []history.Entry{load(1, 0, 41, 0, 10), save(1, 0, 42, history.OK, 10, 20), read(42, 30)}
		wantOK(t, es, 41)
	})
}

func TestWrongHistories(t *testing.T) {
	t.Run("LostUpdate", func(t *testing.T) {
		// A and B both hold the lock and load 0; both saves of 1 succeed.
		es := []history.Entry{
			load(1, 0, 0, 0, 10), load(2, 0, 0, 5, 15),
			save(1, 0, 1, history.OK, 20, 30), save(2, 0, 1, history.OK, 25, 35),
			read(1, 40),
		}
		wantProblems(t, es, 0, "not linearizable", "2 saves were applied")
	})
	t.Run("StaleWrite", func(t *testing.T) {
		// A loads 0 and pauses; B and C increment to 2; A's save of 1
		// succeeds although its lease lapsed.
		es := []history.Entry{
			load(1, 0, 0, 0, 10),
			load(2, 0, 0, 20, 30), save(2, 0, 1, history.OK, 30, 40),
			load(3, 0, 1, 50, 60), save(3, 0, 2, history.OK, 60, 70),
			save(1, 0, 1, history.OK, 80, 90),
			read(1, 100),
		}
		wantProblems(t, es, 0, "not linearizable", "3 saves were applied")
	})
	t.Run("DuplicatedApply", func(t *testing.T) {
		// A's save of 1 is applied again (a retried request) after B
		// saved 2, so C loads 1 again.
		es := []history.Entry{
			load(1, 0, 0, 0, 10), save(1, 0, 1, history.OK, 10, 20),
			load(2, 0, 1, 30, 40), save(2, 0, 2, history.OK, 40, 50),
			load(3, 0, 1, 60, 70), save(3, 0, 2, history.OK, 70, 80),
			read(2, 90),
		}
		wantProblems(t, es, 0, "not linearizable", "3 saves were applied")
	})
	t.Run("RefusedButApplied", func(t *testing.T) {
		// A's save says refused (nothing written), but B loads A's value.
		es := []history.Entry{
			load(1, 0, 0, 0, 10), save(1, 0, 1, history.Refused, 10, 20),
			load(2, 0, 1, 30, 40), save(2, 0, 2, history.OK, 40, 50),
			read(2, 60),
		}
		wantProblems(t, es, 0, "not linearizable", "1 saves were applied",
			"process 1 cycle 0: save of 1 returned refused", "process 2 cycle 0 read 1 later: it was applied")
	})
	t.Run("UnavailableButApplied", func(t *testing.T) {
		s := save(1, 0, 1, history.Unavailable, 10, 20)
		s.Err = "lockproof: store unavailable: context deadline exceeded"
		es := []history.Entry{load(1, 0, 0, 0, 10), s, read(1, 30)}
		wantProblems(t, es, 0, "not linearizable", "0 saves were applied",
			"save of 1 returned unavailable (lockproof: store unavailable: context deadline exceeded), yet process 0 cycle 0 read 1 later")
	})
	t.Run("UnknownAppliedAfterApplyBy", func(t *testing.T) {
		// A's unknown save may apply only until 25, but the counter is
		// still 0 at 30 and 1 at 40 with nobody else writing.
		s := save(1, 0, 1, history.Unknown, 10, 20)
		s.ApplyBy = 25
		es := []history.Entry{load(1, 0, 0, 0, 10), s, read(0, 30), read(1, 40), read(1, 50)}
		// The read at 40 is not final for the check (read at 50 is);
		// give the reads processes of their own.
		es[3].Process, es[4].Process = 7, 8
		wantProblems(t, es, 0, "not linearizable")
	})
	t.Run("StaleRead", func(t *testing.T) {
		// B's locked load returns a value older than A's applied save.
		es := []history.Entry{
			load(1, 0, 0, 0, 10), save(1, 0, 1, history.OK, 10, 20),
			load(2, 0, 0, 30, 40),
			read(1, 50),
		}
		wantProblems(t, es, 0, "not linearizable")
	})
	t.Run("Unclassified", func(t *testing.T) {
		es, _ := serial([]history.Outcome{history.OK, history.Unclassified}, map[int]bool{1: true})
		es[3].Err = "redis: connection pool timeout"
		es[len(es)-1].Output = 2
		wantProblems(t, es, 0, "no outcome class: redis: connection pool timeout")
	})
	t.Run("NoFinalRead", func(t *testing.T) {
		es, _ := serial([]history.Outcome{history.OK, history.OK}, nil)
		wantProblems(t, es[:len(es)-1], 0, "no final read")
	})
	t.Run("FinalReadNotLast", func(t *testing.T) {
		es, _ := serial([]history.Outcome{history.OK, history.OK}, nil)
		es[len(es)-1].Call = es[1].Return - 1
		wantProblems(t, es, 0, "no final read")
	})
	t.Run("SaveWithoutLoad", func(t *testing.T) {
		es := []history.Entry{save(1, 0, 1, history.OK, 10, 20), read(1, 30)}
		wantProblems(t, es, 0, "a save without a successful load")
	})
	t.Run("NotAnIncrement", func(t *testing.T) {
		es := []history.Entry{load(1, 0, 0, 0, 10), save(1, 0, 5, history.OK, 10, 20), read(5, 30)}
		wantProblems(t, es, 0, "saved 5 after loading 0")
	})
	t.Run("ReturnBeforeCall", func(t *testing.T) {
		es := []history.Entry{load(1, 0, 0, 10, 5), read(0, 30)}
		wantProblems(t, es, 0, "returned before it was called")
	})
}

func TestLogRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	l := history.NewLog(&buf, 42)
	es, _ := serial([]history.Outcome{history.OK, history.Unknown, history.Refused}, nil)
	for _, e := range es {
		if err := l.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(buf.String(), "\n"); n != len(es) {
		t.Fatalf("log has %d lines, want %d", n, len(es))
	}
	got, err := history.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(es) {
		t.Fatalf("Parse returned %d entries, want %d", len(got), len(es))
	}
	for i := range es {
		want := es[i]
		want.Process = 42
		if got[i] != want {
			t.Fatalf("entry %d = %+v, want %+v", i, got[i], want)
		}
	}

	for name, bad := range map[string]string{
		"NotJSON":      "{\n",
		"UnknownField": `{"process":1,"op":"load","outcome":"ok","call":1,"return":2,"color":"red"}` + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := history.Parse(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "line 1") {
				t.Fatalf("Parse(%q) = %v, want an error naming line 1", bad, err)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want history.Outcome
	}{
		{nil, history.OK},
		{fmt.Errorf("save: %w", locked.ErrNotHeld), history.Refused},
		{repository.ErrStale, history.Refused},
		{repository.ErrNotFound, history.Refused},
		{provider.CtxError(canceled()), history.Refused},
		{provider.Unavailable(errors.New("dial tcp: refused")), history.Unavailable},
		{provider.OutcomeUnknown(context.DeadlineExceeded), history.Unknown},
		{context.DeadlineExceeded, history.Unclassified},
		{errors.New("redis: i/o timeout"), history.Unclassified},
	}
	for _, tc := range tests {
		if got := history.Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
