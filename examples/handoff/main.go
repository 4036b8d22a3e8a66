// Command handoff shows a lease handed from a request to a background
// worker: the request acquires the job's lock, sends the lease's Handle
// (as JSON, as it would over a queue) and detaches its lease; the worker
// restores the Handle with its own Service, does the job under the lock and
// releases it. The lock is never free in between, so no second request can
// start the same job.
//
// By default both Services share one in-memory provider; with -redis ADDR
// the worker has its own Redis client and provider, as another process
// would.
//
//	go run ./examples/handoff
//	go run ./examples/handoff -redis localhost:6379
//
// It exits with status 1 if a job was lost, done twice, or left locked.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/redisprovider"
)

// request takes the job's lock and hands it over: it returns the encoded
// Handle, with its own lease detached (so neither it nor Service.Close
// releases what the worker now holds).
func request(ctx context.Context, svc *locked.Service, job string) ([]byte, error) {
	lease, err := svc.Acquire(ctx, job)
	if err != nil {
		return nil, err
	}
	msg, err := json.Marshal(lease.Handle())
	if err != nil {
		_ = lease.Close()
		return nil, err
	}
	lease.Detach()
	// Detached here, still held in the store for the worker.
	if err := lease.Check(ctx); !errors.Is(err, locked.ErrNotHeld) {
		return nil, fmt.Errorf("%s: detached lease still usable: %v", job, err)
	}
	if held, err := svc.IsLocked(ctx, job); err != nil || !held {
		return nil, fmt.Errorf("%s: free after Detach (%v): the hand-over would race", job, err)
	}
	return msg, nil
}

// work restores the handed-over lease, does the job and releases it. It
// returns the job's key and fence.
func work(ctx context.Context, svc *locked.Service, msg []byte) (locked.Handle, error) {
	var h locked.Handle
	if err := json.Unmarshal(msg, &h); err != nil {
		return h, err
	}
	lease, err := svc.Restore(ctx, h)
	if err != nil {
		return h, err
	}
	defer lease.Close()
	// The job runs while lease.Context() lives; a real job would pass
	// lease.Fence() to its store.
	if err := lease.Check(ctx); err != nil {
		return h, err
	}
	if err := lease.Release(ctx); err != nil {
		return h, err
	}
	// Spent: the same Handle cannot be restored again.
	if _, err := svc.Restore(ctx, h); !errors.Is(err, locked.ErrNotHeld) {
		return h, fmt.Errorf("%s: handle restored after release: %v", h.Key, err)
	}
	return h, nil
}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "handoff:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("handoff", flag.ContinueOnError)
	jobs := fs.Int("jobs", 20, "jobs to hand over")
	redisAddr := fs.String("redis", "", "take the locks from the Redis server at this address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *jobs < 1 {
		return errors.New("need -jobs >= 1")
	}

	// The request side and the worker side each have a Service; with Redis
	// each also has its own client and provider.
	var reqP, workP provider.Provider
	if *redisAddr == "" {
		mp := memprovider.New()
		reqP, workP = mp, mp
		defer mp.Close()
	} else {
		for _, pp := range []*provider.Provider{&reqP, &workP} {
			client := redis.NewClient(&redis.Options{Addr: *redisAddr, ContextTimeoutEnabled: true})
			defer client.Close()
			rp, err := redisprovider.New(client, nil)
			if err != nil {
				return err
			}
			defer rp.Close()
			*pp = rp
		}
	}
	reqSvc, err := locked.New(reqP, &locked.Options{Owner: "api"})
	if err != nil {
		return err
	}
	defer reqSvc.Close()
	workSvc, err := locked.New(workP, &locked.Options{Owner: "worker"})
	if err != nil {
		return err
	}
	defer workSvc.Close()

	// The background worker: owned by run, stopped by closing queue.
	queue := make(chan []byte)
	done := make(map[string]int) // job → times done, written by the worker only
	var fences []locked.Handle   // the handed-over leases
	var workErr error            // the worker's first error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for msg := range queue {
			h, err := work(ctx, workSvc, msg)
			if err != nil && workErr == nil {
				workErr = err
			}
			done[h.Key]++
			fences = append(fences, h)
		}
	}()
	var reqErr error
	for i := range *jobs {
		msg, err := request(ctx, reqSvc, "job:"+strconv.Itoa(i))
		if err != nil {
			reqErr = err
			break
		}
		queue <- msg
	}
	close(queue)
	wg.Wait()
	if err := errors.Join(reqErr, workErr); err != nil {
		return err
	}

	// Every job done once, every lock free, no lease left open, and the
	// next holder of a job gets a higher fence than the handed-over one.
	for _, h := range fences {
		if held, err := reqSvc.IsLocked(ctx, h.Key); err != nil || held {
			return fmt.Errorf("%s left locked (%v)", h.Key, err)
		}
	}
	apiOpen, workerOpen := reqSvc.Held(), workSvc.Held()
	next, err := reqSvc.Acquire(ctx, fences[0].Key)
	if err != nil {
		return err
	}
	defer next.Close()
	fmt.Fprintf(out, "%d jobs handed over, %d done; open leases: api %d, worker %d; next fence of %s: %d > %d\n",
		*jobs, len(done), apiOpen, workerOpen, fences[0].Key, next.Fence(), fences[0].Fence)
	for key, n := range done {
		if n != 1 {
			return fmt.Errorf("%s done %d times", key, n)
		}
	}
	if len(done) != *jobs || apiOpen != 0 || workerOpen != 0 || next.Fence() <= fences[0].Fence {
		return errors.New("the hand-over did NOT hold")
	}
	fmt.Fprintln(out, "every job handed over and done exactly once")
	return nil
}
