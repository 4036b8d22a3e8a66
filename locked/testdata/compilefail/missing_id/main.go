// Locking or storing a type that has no ID method: it does not satisfy
// persistent.Persistent, so it has no lock key.
package main

import (
	"context"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/repository"
)

type Note struct {
	Text string
}

func (*Note) Kind() string { return "note" }

func edit(ctx context.Context, svc *locked.Service, n *Note) error {
	l, err := locked.Acquire(ctx, svc, n) // want `T \(type \*Note\) does not satisfy persistent\.Persistent \(missing method ID\)`
	if err != nil {
		return err
	}
	return l.Close()
}

var notes = repository.NewMemory[*Note]() // want `\*Note does not satisfy persistent\.Persistent \(missing method ID\)`

func main() {
	_ = edit(context.Background(), nil, &Note{Text: "hi"})
	_ = notes
}
