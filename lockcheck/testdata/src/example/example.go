// Package example is the input of lockcheck's Example.
package example

import (
	"context"
	"fmt"

	"github.com/lockproof/lockproof/locked"
)

func report(ctx context.Context, svc *locked.Service) error {
	l, err := svc.Acquire(ctx, "report")
	if err != nil {
		return err
	}
	if l.Fence() == 0 {
		return fmt.Errorf("no fence")
	}
	defer l.Close()
	fmt.Println("writing the report under", l.Key())
	return nil
}
