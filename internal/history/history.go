// Package history records and checks histories of the lock → load →
// increment → save workload, the way Jepsen-style tests do: every operation
// of every process is logged with its call and return times and the class
// of its outcome, and the merged history is checked for linearizability
// with porcupine (github.com/anishathalye/porcupine) and against the final
// value of the counter.
//
// # The workload
//
// Several processes repeat one cycle on one entity holding a counter:
// locked.Load (lock, then read N), N+1, Save, Close. Each step is one
// [Entry] of the log, one JSON line:
//
//	{"process":4711,"cycle":3,"op":"load","output":41,"fence":90,"outcome":"ok","call":…,"return":…}
//	{"process":4711,"cycle":3,"op":"save","input":42,"fence":90,"outcome":"unknown","err":"…","call":…,"return":…,"apply_by":…}
//	{"process":4711,"cycle":3,"op":"release","outcome":"ok","call":…,"return":…}
//
// Times are Unix nanoseconds from the wall clock ([Now]), so the logs of
// processes on one machine merge into one history. A final unlocked read
// of the counter (op "read"), taken after every process has stopped, closes
// the history.
//
// # Outcome classes
//
// Every call ends in one of the classes of lockproof's contract ([Classify]):
// ok; refused (the store decided, nothing changed); unavailable (nothing was
// sent, nothing changed); unknown (the request may have been applied). An
// error that matches none of them is "unclassified": the checker treats it
// as unknown and reports it as a problem, because every answer must say
// what happened.
//
// # The model
//
// The state is the counter. An ok unlocked read (op "read") reads it over
// its interval. A cycle whose load succeeded contributes a
// read of the loaded value over the load's interval, and, by the outcome of
// its save:
//
//   - ok: an increment from the value read to the value written, atomic
//     over the whole cycle (load call to save return): it may take effect
//     only while the counter still holds the value read, which is what the
//     lock is for. A lost update or a stale write breaks this.
//   - refused or unavailable: nothing more; the counter must not change.
//   - unknown: the same increment, which may or may not take effect at any
//     time after the save's call and before its apply_by (the moment the
//     lease lapses in the store, after which no store may apply it; the
//     final read when absent). porcupine's nondeterministic model explores
//     both.
//
// Check also requires final = initial + ok saves + some number of unknown
// saves between 0 and all of them: a duplicated or lost apply fails it
// even where the interleaving could hide it.
package history

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/repository"
)

// Op names the kind of an operation.
type Op string

// The operations of the workload.
const (
	Load    Op = "load"    // locked.Load: lock, then read; Output is N as read, Fence the proof's
	Save    Op = "save"    // Save of the loaded entity; Input is N as written
	Release Op = "release" // Close of the proof; not part of the model
	Read    Op = "read"    // an unlocked Find; Output is N as read
)

// Outcome is the class of an operation's result.
type Outcome string

// The outcome classes; see the package documentation.
const (
	OK           Outcome = "ok"
	Refused      Outcome = "refused"
	Unavailable  Outcome = "unavailable"
	Unknown      Outcome = "unknown"
	Unclassified Outcome = "unclassified"
)

// Classify returns the outcome class of err, an error from lockproof.
func Classify(err error) Outcome {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, provider.ErrOutcomeUnknown):
		return Unknown
	case errors.Is(err, provider.ErrUnavailable):
		return Unavailable
	case errors.Is(err, provider.ErrNotHeld), errors.Is(err, provider.ErrNotAcquired),
		errors.Is(err, provider.ErrInvalid), errors.Is(err, provider.ErrClosed),
		errors.Is(err, repository.ErrNotFound), errors.Is(err, repository.ErrExists):
		return Refused
	}
	return Unclassified
}

// Entry is one operation of one process: one line of a log.
type Entry struct {
	Process int     `json:"process"`          // the process (its PID, in the multi-process test)
	Cycle   int     `json:"cycle"`            // the cycle, numbered per process; ties a load to its save
	Op      Op      `json:"op"`               // what was called
	Input   int64   `json:"input,omitempty"`  // save: N as written
	Output  int64   `json:"output,omitempty"` // load, read: N as read
	Fence   uint64  `json:"fence,omitempty"`  // load, save: the proof's fence
	Outcome Outcome `json:"outcome"`          // the class of the result
	Err     string  `json:"err,omitempty"`    // the error, if any
	Call    int64   `json:"call"`             // Unix nanoseconds before the call
	Return  int64   `json:"return"`           // Unix nanoseconds after it returned
	// ApplyBy, for a save, is the latest Unix nanosecond at which the store
	// may still apply it (the lease's expiry in the store, bounded from
	// above); 0 means until the final read.
	ApplyBy int64 `json:"apply_by,omitempty"`
}

// Now returns the current time in the unit of Entry.Call and Entry.Return.
func Now() int64 { return time.Now().UnixNano() }

// Log writes entries as JSON lines, one Write per line, so a process that
// dies leaves whole lines behind. It is safe for concurrent use.
type Log struct {
	process int
	mu      sync.Mutex // serialises writes to w
	w       io.Writer
}

// NewLog returns a Log of the process writing to w.
func NewLog(w io.Writer, process int) *Log { return &Log{process: process, w: w} }

// Add writes e with the Log's process.
func (l *Log) Add(e Entry) error {
	e.Process = l.process
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	return nil
}

// Parse parses a log: one JSON Entry per line; blank lines are skipped.
func Parse(r io.Reader) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var e Entry
		dec := json.NewDecoder(strings.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return out, fmt.Errorf("history: line %d: %w", line, err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("history: %w", err)
	}
	return out, nil
}

// ReadFiles reads and merges the logs in the files.
func ReadFiles(paths ...string) ([]Entry, error) {
	var all []Entry
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("history: %w", err)
		}
		es, err := Parse(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		all = append(all, es...)
	}
	return all, nil
}

// Result is what Check found.
type Result struct {
	Entries   int                    // entries in the history
	Processes int                    // distinct processes
	Cycles    int                    // cycles with a successful load
	Outcomes  map[Op]map[Outcome]int // entries by op and outcome
	Checked   porcupine.CheckResult  // porcupine's verdict: Ok, Illegal or Unknown (timed out)
	Initial   int64                  // the counter before the history
	Final     int64                  // the final read
	Applied   int                    // saves that returned ok
	Uncertain int                    // saves whose outcome is unknown or unclassified
	Problems  []string               // everything wrong with the history; empty if it is correct
	info      porcupine.LinearizationInfo
}

// OK reports whether the history is correct.
func (r *Result) OK() bool { return len(r.Problems) == 0 }

// String summarises r in one line.
func (r *Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d entries from %d processes, %d cycles; ", r.Entries, r.Processes, r.Cycles)
	for _, op := range []Op{Load, Save, Release, Read} {
		m := r.Outcomes[op]
		if len(m) == 0 {
			continue
		}
		keys := make([]string, 0, len(m))
		for o, n := range m {
			keys = append(keys, fmt.Sprintf("%s=%d", o, n))
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "%s{%s} ", op, strings.Join(keys, " "))
	}
	fmt.Fprintf(&b, "; counter %d → %d with %d applied and %d uncertain saves; porcupine %s; %d problems",
		r.Initial, r.Final, r.Applied, r.Uncertain, r.Checked, len(r.Problems))
	return b.String()
}

// Visualize writes porcupine's HTML view of the checked history to path.
func (r *Result) Visualize(path string) error {
	return porcupine.VisualizePath(modelFrom(r.Initial), r.info, path)
}

// step is the input of one porcupine operation.
type step struct {
	kind  stepKind
	read  int64 // the value the cycle read
	write int64 // the value it wrote (increments)
}

type stepKind int

const (
	readStep  stepKind = iota // the counter holds read
	applied                   // read → write, certainly
	uncertain                 // read → write, or nothing
)

// nondet is the model of the counter, without its initial state (see
// modelFrom).
var nondet = porcupine.NondeterministicModel{
	Step: func(state, input, _ any) []any {
		s, in := state.(int64), input.(step)
		switch in.kind {
		case readStep:
			if s == in.read {
				return []any{s}
			}
			return nil
		case applied:
			if s == in.read {
				return []any{in.write}
			}
			return nil
		default: // uncertain
			if s == in.read {
				return []any{s, in.write}
			}
			return []any{s}
		}
	},
	DescribeOperation: func(input, _ any) string {
		in := input.(step)
		switch in.kind {
		case readStep:
			return fmt.Sprintf("read %d", in.read)
		case applied:
			return fmt.Sprintf("%d → %d", in.read, in.write)
		default:
			return fmt.Sprintf("%d → %d ?", in.read, in.write)
		}
	},
	DescribeState: func(state any) string { return fmt.Sprint(state) },
}

// Check checks entries, the merged logs of every process plus the final
// read, for a counter that started at initial. timeout bounds porcupine's
// search (0: none); a search that times out is reported as a problem.
func Check(entries []Entry, initial int64, timeout time.Duration) *Result {
	r := &Result{Entries: len(entries), Initial: initial, Outcomes: map[Op]map[Outcome]int{}}
	problem := func(format string, args ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, args...)) }

	procs := map[int]int{} // process → porcupine client index
	var lastReturn int64   // of every entry but the final read
	final := -1            // index of the final read
	for i, e := range entries {
		if r.Outcomes[e.Op] == nil {
			r.Outcomes[e.Op] = map[Outcome]int{}
		}
		r.Outcomes[e.Op][e.Outcome]++
		if _, ok := procs[e.Process]; !ok {
			procs[e.Process] = len(procs)
		}
		if e.Outcome == Unclassified {
			problem("process %d cycle %d: %s returned an error of no outcome class: %s", e.Process, e.Cycle, e.Op, e.Err)
		}
		if e.Return < e.Call {
			problem("process %d cycle %d: %s returned before it was called", e.Process, e.Cycle, e.Op)
		}
		if e.Op == Read && e.Outcome == OK && (final < 0 || e.Call > entries[final].Call) {
			final = i
		}
	}
	r.Processes = len(procs)
	for i, e := range entries {
		if i != final {
			lastReturn = max(lastReturn, e.Return)
		}
	}
	settled := int64(math.MaxInt64 / 2) // when every request has been applied or dropped
	if final < 0 || entries[final].Call <= lastReturn {
		problem("no final read: the history needs an ok read that starts after every other operation returned")
		final = -1
	} else {
		r.Final = entries[final].Output
		settled = entries[final].Call - 1
	}

	// Assemble cycles.
	type cycleKey struct{ process, cycle int }
	type cycle struct{ load, save *Entry }
	cycles := map[cycleKey]*cycle{}
	var order []cycleKey
	for i := range entries {
		e := &entries[i]
		if e.Op != Load && e.Op != Save {
			continue
		}
		k := cycleKey{e.Process, e.Cycle}
		c := cycles[k]
		if c == nil {
			c = &cycle{}
			cycles[k] = c
			order = append(order, k)
		}
		slot := &c.load
		if e.Op == Save {
			slot = &c.save
		}
		if *slot != nil {
			problem("process %d cycle %d: two %s entries", e.Process, e.Cycle, e.Op)
			continue
		}
		*slot = e
	}

	var ops []porcupine.Operation
	add := func(process int, in step, call, ret int64) {
		ops = append(ops, porcupine.Operation{ClientId: procs[process], Input: in, Call: call, Return: ret})
	}
	for _, k := range order {
		c := cycles[k]
		if c.load == nil || c.load.Outcome != OK {
			if c.save != nil {
				problem("process %d cycle %d: a save without a successful load", k.process, k.cycle)
			}
			continue
		}
		r.Cycles++
		add(k.process, step{kind: readStep, read: c.load.Output}, c.load.Call, c.load.Return)
		s := c.save
		if s == nil {
			continue
		}
		if s.Input != c.load.Output+1 {
			problem("process %d cycle %d: saved %d after loading %d; the workload increments by one", k.process, k.cycle, s.Input, c.load.Output)
		}
		switch s.Outcome {
		case OK:
			r.Applied++
			add(k.process, step{kind: applied, read: c.load.Output, write: s.Input}, c.load.Call, s.Return)
		case Unknown, Unclassified:
			r.Uncertain++
			by := settled
			if s.ApplyBy != 0 {
				by = min(by, max(s.ApplyBy, s.Return))
			}
			add(k.process, step{kind: uncertain, read: c.load.Output, write: s.Input}, s.Call, by)
		}
	}
	for _, e := range entries { // unlocked reads, the final one among them
		if e.Op == Read && e.Outcome == OK {
			add(e.Process, step{kind: readStep, read: e.Output}, e.Call, e.Return)
		}
	}

	r.blame(entries, initial)
	res, info := porcupine.CheckOperationsVerbose(modelFrom(initial), ops, timeout)
	r.Checked, r.info = res, info
	switch res {
	case porcupine.Illegal:
		problem("not linearizable: no order of the %d operations explains what the processes saw (%s)", len(ops), r.longestPrefix())
	case porcupine.Unknown:
		problem("porcupine timed out after %v: linearizability not decided", timeout)
	}

	if final >= 0 {
		got := r.Final - initial
		lo, hi := int64(r.Applied), int64(r.Applied+r.Uncertain)
		if got < lo || got > hi {
			problem("final counter %d: %d increments over the initial %d, but %d saves were applied and %d uncertain (want %d..%d)",
				r.Final, got, initial, r.Applied, r.Uncertain, lo, hi)
		}
	}
	return r
}

// blame names the saves that said they did not apply although their value
// was read later: a value that no ok or uncertain save wrote can only come
// from one of them. It makes the first wrong answer visible in the
// problems, where porcupine only says that no order fits.
func (r *Result) blame(entries []Entry, initial int64) {
	written := map[int64]bool{initial: true} // by a save that may have applied
	denied := map[int64][]Entry{}            // by a save that said it did not
	for _, e := range entries {
		if e.Op != Save {
			continue
		}
		switch e.Outcome {
		case OK, Unknown, Unclassified:
			written[e.Input] = true
		default:
			denied[e.Input] = append(denied[e.Input], e)
		}
	}
	for _, e := range entries {
		if (e.Op != Load && e.Op != Read) || e.Outcome != OK || written[e.Output] {
			continue
		}
		written[e.Output] = true // report each value once
		for _, s := range denied[e.Output] {
			if s.Call < e.Return {
				r.Problems = append(r.Problems, fmt.Sprintf("process %d cycle %d: save of %d returned %s (%s), yet process %d cycle %d read %d later: it was applied",
					s.Process, s.Cycle, s.Input, s.Outcome, s.Err, e.Process, e.Cycle, e.Output))
			}
		}
	}
}

// modelFrom returns the model starting at initial.
func modelFrom(initial int64) porcupine.Model {
	nm := &porcupine.NondeterministicModel{
		Init:              func() []any { return []any{initial} },
		Step:              nondet.Step,
		DescribeOperation: nondet.DescribeOperation,
		DescribeState:     nondet.DescribeState,
	}
	return nm.ToModel()
}

// longestPrefix describes how far the longest partial linearization got.
func (r *Result) longestPrefix() string {
	best := 0
	for _, part := range r.info.PartialLinearizations() {
		for _, lin := range part {
			best = max(best, len(lin))
		}
	}
	return fmt.Sprintf("the longest order that fits has %d operations", best)
}
