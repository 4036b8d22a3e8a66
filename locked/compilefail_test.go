// Misuse tests: wrong uses of the public API must not compile, and copies
// of a proof must not pass go vet.
//
// Each directory under testdata/compilefail is a small package that uses
// lockproof wrongly in one way: saving without a proof, forging a proof,
// comparing proofs and so on. The rest of the package is correct, and every
// line the compiler must reject ends with a comment
//
//	// want `regexp`
//
// (a Go string, raw or interpreted; several may follow one "want"). Every
// regexp must match an error reported on its line. TestCompileFail builds
// each directory on its own with
//
//	go build -gcflags=-e -o /dev/null ./testdata/compilefail/<case>
//
// (-e reports every error, not only the first ten) and fails if the case
// compiles, if an error is on a line without a matching want, or if a want
// matches no error. TestVetFail does the same for testdata/vetfail with
// `go vet -copylocks`: those cases compile, and the wants match vet's
// diagnostics instead.
//
// The go command skips testdata directories in patterns such as ./..., so
// the cases are never part of the module's own build, vet or tests; named
// explicitly, each is built as a package of this module. The test needs
// only the go command (found on PATH, where go test puts its own first), not
// golang.org/x/tools, and is skipped with -short.
//
// To add a case, make a directory with the mistake, run the test, and copy
// each error into a want comment on its line.
package locked_test

import (
	"errors"
	"fmt"
	"go/scanner"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestCompileFail proves that each misuse in testdata/compilefail is a
// compile error, and the expected one.
func TestCompileFail(t *testing.T) {
	runMisuseCases(t, "testdata/compilefail", "build", "-gcflags=-e", "-o", os.DevNull)
}

// TestVetFail proves that go vet reports each copy of a Locked in
// testdata/vetfail.
func TestVetFail(t *testing.T) {
	runMisuseCases(t, "testdata/vetfail", "vet", "-copylocks")
}

// runMisuseCases runs `go <args> ./<root>/<case>` for every case directory
// under root, as parallel subtests, and checks the output against the
// cases' want comments.
func runMisuseCases(t *testing.T, root string, args ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: runs the go command on every case")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("skipping: no go command: %v", err)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var cases []string
	for _, e := range entries {
		if e.IsDir() {
			cases = append(cases, e.Name())
		}
	}
	if len(cases) == 0 {
		t.Fatalf("no cases in %s", root)
	}
	for _, name := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(root, name)
			wants := readMisuseWants(t, dir)
			if len(wants) == 0 {
				t.Fatalf("%s has no want comments: a case must name the errors it expects", dir)
			}
			cmdArgs := append(slices.Clip(args), "./"+filepath.ToSlash(dir))
			cmd := exec.CommandContext(t.Context(), goCmd, cmdArgs...)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			switch {
			case err == nil:
				t.Errorf("go %s succeeded; the case must fail", strings.Join(cmdArgs, " "))
			case !errors.As(err, &exit):
				t.Fatalf("go %s: %v", strings.Join(cmdArgs, " "), err)
			}
			diags, stray := parseMisuseOutput(string(out))
			for _, line := range stray {
				t.Errorf("unexpected output from go %s: %s", args[0], line)
			}
			for _, problem := range checkMisuse(t, wants, diags) {
				t.Error(problem)
			}
		})
	}
}

// misuseWant is one expected error: a regexp for the given line.
type misuseWant struct {
	pos token.Position // file (absolute) and line of the want comment
	re  *regexp.Regexp
}

// misuseDiag is one error or diagnostic reported by the go command.
type misuseDiag struct {
	pos token.Position // file (absolute), line and column
	msg string
}

// readMisuseWants returns the want comments of the .go files in dir. It
// reads them with go/scanner, which needs no valid syntax or types.
func readMisuseWants(t *testing.T, dir string) []misuseWant {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var wants []misuseWant
	for _, name := range files {
		path, err := filepath.Abs(name)
		if err != nil {
			t.Fatal(err)
		}
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		fset := token.NewFileSet()
		var s scanner.Scanner
		s.Init(fset.AddFile(path, -1, len(src)), src, nil, scanner.ScanComments)
		for {
			p, tok, lit := s.Scan()
			if tok == token.EOF {
				break
			}
			if tok != token.COMMENT {
				continue
			}
			text, ok := strings.CutPrefix(lit, "//")
			if !ok {
				continue
			}
			text, ok = strings.CutPrefix(strings.TrimSpace(text), "want ")
			if !ok {
				continue
			}
			pos := fset.Position(p)
			res, err := parseWantPatterns(text)
			if err != nil {
				t.Fatalf("%s: bad want comment: %v", pos, err)
			}
			for _, re := range res {
				wants = append(wants, misuseWant{pos: pos, re: re})
			}
		}
	}
	return wants
}

// parseWantPatterns parses the Go strings after "want" as regexps.
func parseWantPatterns(text string) ([]*regexp.Regexp, error) {
	var res []*regexp.Regexp
	for text = strings.TrimSpace(text); text != ""; text = strings.TrimSpace(text) {
		quoted, err := strconv.QuotedPrefix(text)
		if err != nil {
			return nil, fmt.Errorf("%q is not a Go string", text)
		}
		text = text[len(quoted):]
		pattern, err := strconv.Unquote(quoted)
		if err != nil {
			return nil, err
		}
		re, err := regexp.Compile(pattern)
		if err != nil {
			return nil, err
		}
		res = append(res, re)
	}
	if len(res) == 0 {
		return nil, errors.New("no pattern")
	}
	return res, nil
}

// diagLine matches "file.go:line:col: message" (the column is optional).
var diagLine = regexp.MustCompile(`^(.+\.go):(\d+)(?::(\d+))?: (.*)$`)

// parseMisuseOutput splits the go command's output into diagnostics and
// stray lines. Indented lines continue the previous diagnostic (the
// compiler's "have …/want …" details); "# package" headers are dropped.
// File names are made absolute, relative to the current directory as the
// go command prints them.
func parseMisuseOutput(out string) (diags []misuseDiag, stray []string) {
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.TrimSpace(line) == "", strings.HasPrefix(line, "# "):
			continue
		case (line[0] == ' ' || line[0] == '\t') && len(diags) > 0:
			diags[len(diags)-1].msg += "\n" + line
			continue
		}
		m := diagLine.FindStringSubmatch(line)
		if m == nil {
			stray = append(stray, line)
			continue
		}
		file, err := filepath.Abs(m[1])
		if err != nil {
			stray = append(stray, line)
			continue
		}
		lineNo, _ := strconv.Atoi(m[2])
		col, _ := strconv.Atoi(m[3]) // 0 if absent
		diags = append(diags, misuseDiag{
			pos: token.Position{Filename: file, Line: lineNo, Column: col},
			msg: m[4],
		})
	}
	return diags, stray
}

// checkMisuse returns one problem for every diagnostic that no want on its
// line matches, and one for every want that matches no diagnostic.
func checkMisuse(t *testing.T, wants []misuseWant, diags []misuseDiag) []string {
	t.Helper()
	var problems []string
	matched := make([]bool, len(wants))
	for _, d := range diags {
		var tried []string
		found := false
		for i, w := range wants {
			if w.pos.Filename != d.pos.Filename || w.pos.Line != d.pos.Line {
				continue
			}
			tried = append(tried, "`"+w.re.String()+"`")
			if w.re.MatchString(d.msg) {
				matched[i] = true
				found = true
			}
		}
		switch {
		case found:
		case len(tried) == 0:
			problems = append(problems, fmt.Sprintf("%s: unexpected error (no want on this line): %s", relPos(d.pos), d.msg))
		default:
			problems = append(problems, fmt.Sprintf("%s: error %q matches none of the wants %s", relPos(d.pos), d.msg, strings.Join(tried, ", ")))
		}
	}
	for i, w := range wants {
		if !matched[i] {
			problems = append(problems, fmt.Sprintf("%s: no error matches want `%s`", relPos(w.pos), w.re))
		}
	}
	return problems
}

// relPos formats pos with its file relative to the current directory.
func relPos(pos token.Position) string {
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, pos.Filename); err == nil {
			pos.Filename = rel
		}
	}
	return pos.String()
}

// TestCheckMisuse proves that the checker behind TestCompileFail reports
// each kind of mismatch, so a silent pass means the cases really fail.
func TestCheckMisuse(t *testing.T) {
	at := func(line int) token.Position { return token.Position{Filename: "/x/main.go", Line: line} }
	want := func(line int, re string) misuseWant { return misuseWant{pos: at(line), re: regexp.MustCompile(re)} }
	diag := func(line int, msg string) misuseDiag { return misuseDiag{pos: at(line), msg: msg} }
	tests := []struct {
		name     string
		wants    []misuseWant
		diags    []misuseDiag
		problems []string // substrings, one per expected problem
	}{
		{"all matched", []misuseWant{want(3, `cannot use a`), want(7, `undefined`)},
			[]misuseDiag{diag(3, "cannot use a (variable of type *Account)"), diag(7, "l.entity undefined")}, nil},
		{"two wants on one line", []misuseWant{want(3, `lease`), want(3, `entity`)},
			[]misuseDiag{diag(3, "field lease"), diag(3, "field entity")}, nil},
		{"case compiles", []misuseWant{want(3, `cannot use`)}, nil,
			[]string{"no error matches want `cannot use`"}},
		{"error without want", []misuseWant{want(3, `cannot use`)},
			[]misuseDiag{diag(3, "cannot use a"), diag(4, "declared and not used: x")},
			[]string{"unexpected error (no want on this line): declared and not used"}},
		{"error on the wrong line", []misuseWant{want(3, `cannot use`)}, []misuseDiag{diag(4, "cannot use a")},
			[]string{"unexpected error", "no error matches want"}},
		{"want does not match", []misuseWant{want(3, `cannot convert`)}, []misuseDiag{diag(3, "cannot use a")},
			[]string{"matches none of the wants `cannot convert`", "no error matches want `cannot convert`"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkMisuse(t, tt.wants, tt.diags)
			if len(got) != len(tt.problems) {
				t.Fatalf("got %d problems %q, want %d like %q", len(got), got, len(tt.problems), tt.problems)
			}
			for i, p := range tt.problems {
				if !strings.Contains(got[i], p) {
					t.Errorf("problem %d = %q, want it to contain %q", i, got[i], p)
				}
			}
		})
	}
}

// TestParseMisuseOutput checks the parsing of the go command's output.
func TestParseMisuseOutput(t *testing.T) {
	out := "# github.com/lockproof/lockproof/locked/testdata/compilefail/x\n" +
		"testdata/x/main.go:28:41: cannot use accounts as locked.Finder[*User] value\n" +
		"\t\thave Find(context.Context, string) (*Account, error)\n" +
		"testdata/x/main.go:30: no column\n" +
		"go: something else\n"
	diags, stray := parseMisuseOutput(out)
	abs, err := filepath.Abs("testdata/x/main.go")
	if err != nil {
		t.Fatal(err)
	}
	wantDiags := []misuseDiag{
		{token.Position{Filename: abs, Line: 28, Column: 41}, "cannot use accounts as locked.Finder[*User] value\n\t\thave Find(context.Context, string) (*Account, error)"},
		{token.Position{Filename: abs, Line: 30}, "no column"},
	}
	if !slices.Equal(diags, wantDiags) {
		t.Errorf("diagnostics = %+v, want %+v", diags, wantDiags)
	}
	if want := []string{"go: something else"}; !slices.Equal(stray, want) {
		t.Errorf("stray lines = %q, want %q", stray, want)
	}
}
