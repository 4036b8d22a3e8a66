package memprovider_test

import (
	"context"
	"fmt"
	"time"

	"github.com/lockproof/lockproof/memprovider"
)

// The provider's own API is what locked.Service uses; the test helpers
// (IsLocked, Holder, Len, Clear) let tests look inside.
func ExampleNew() {
	p := memprovider.New()
	defer p.Close()
	ctx := context.Background()

	g, err := p.TryAcquire(ctx, "report:7", "worker-1", time.Minute)
	fmt.Println(g.Fence, err)
	_, err = p.TryAcquire(ctx, "report:7", "worker-2", time.Minute)
	fmt.Println(err)

	holder, _ := p.Holder("report:7")
	fmt.Println(holder, p.IsLocked("report:7"), p.Len())
	fmt.Println(p.Release(ctx, "report:7", "worker-2")) // not the holder
	fmt.Println(p.Release(ctx, "report:7", "worker-1"))
	fmt.Println(p.IsLocked("report:7"))
	// Output:
	// 1 <nil>
	// lockproof: not acquired
	// worker-1 true 1
	// lockproof: not held
	// <nil>
	// false
}
