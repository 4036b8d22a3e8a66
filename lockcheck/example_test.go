package lockcheck_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"golang.org/x/tools/go/analysis"
	"golang.org/x/tools/go/analysis/checker"
	"golang.org/x/tools/go/packages"

	"github.com/lockproof/lockproof/lockcheck"
)

// Example runs the analyzer on testdata/src/example, whose report function
// returns early before it defers the lease's Close. Use cmd/lockcheck with
// go vet for real code; this is what it prints.
func Example() {
	gopath, err := filepath.Abs("testdata")
	if err != nil {
		log.Fatal(err)
	}
	cfg := &packages.Config{
		Mode: packages.LoadAllSyntax,
		Dir:  filepath.Join(gopath, "src", "example"),
		Env:  append(os.Environ(), "GOPATH="+gopath, "GO111MODULE=off", "GOFLAGS="),
	}
	pkgs, err := packages.Load(cfg, "example")
	if err != nil {
		log.Fatal(err)
	}
	g, err := checker.Analyze([]*analysis.Analyzer{lockcheck.Analyzer}, pkgs, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, act := range g.Roots {
		for _, d := range act.Diagnostics {
			p := act.Package.Fset.Position(d.Pos)
			fmt.Printf("%s:%d: %s\n", filepath.Base(p.Filename), p.Line, d.Message)
		}
	}
	// Output:
	// example.go:12: l (*locked.Lease from svc.Acquire) is not closed on every path: the return at line 17 can be reached without closing it (defer l.Close() after the error check)
}
