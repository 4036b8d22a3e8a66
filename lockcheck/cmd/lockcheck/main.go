// Command lockcheck reports leaked, discarded and nested lockproof locks.
//
// Run it through go vet:
//
//	go install github.com/lockproof/lockproof/lockcheck/cmd/lockcheck@latest
//	go vet -vettool=$(which lockcheck) ./...
//
// or on its own as `lockcheck ./...`. See package
// github.com/lockproof/lockproof/lockcheck for what it reports.
package main

import (
	"golang.org/x/tools/go/analysis/singlechecker"

	"github.com/lockproof/lockproof/lockcheck"
)

func main() { singlechecker.Main(lockcheck.Analyzer) }
