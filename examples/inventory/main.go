// Command inventory runs many order workers that reserve units of one SKU
// at once, and checks that the stock is never oversold: the units the
// workers reserved add up to exactly the opening stock, and the stock
// record agrees.
//
// Each order locks the SKU with locked.Load (which reads the stock under
// the lock), reserves what is left up to the order's quantity and saves
// with the proof. By default everything is in memory; with -redis ADDR the
// lock and the stock record live in Redis, and -procs N re-runs this
// program as N OS processes that all sell from the same stock.
//
//	go run ./examples/inventory
//	go run ./examples/inventory -redis localhost:6379 -procs 4
//
// It exits with status 1 if the stock was oversold or undersold.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/redisprovider"
	"github.com/lockproof/lockproof/repository"
	"github.com/lockproof/lockproof/repository/redisrepo"
)

// Stock is the stock of one SKU; its lock key is "stock:<SKU>".
type Stock struct {
	SKU       string
	Available int // units left to sell
	Reserved  int // units reserved by orders so far
	Orders    int // orders that reserved at least one unit
}

// Kind implements persistent.Persistent.
func (*Stock) Kind() string { return "stock" }

// ID implements persistent.Persistent.
func (s *Stock) ID() string { return s.SKU }

const sku = "widget"

// reserve places one order for up to qty units under the SKU's lock and
// returns the units it got (0 when sold out).
func reserve(ctx context.Context, svc *locked.Service, repo repository.Repository[*Stock], qty int) (int, error) {
	l, err := locked.Load(ctx, svc, repo, sku)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	s := l.Entity()
	got := min(qty, s.Available)
	if got == 0 {
		return 0, nil
	}
	s.Available -= got
	s.Reserved += got
	s.Orders++
	if err := repo.Save(ctx, l); err != nil {
		return 0, err
	}
	return got, nil
}

// sell runs workers order workers until the SKU is sold out and returns
// the units and orders they reserved.
func sell(ctx context.Context, svc *locked.Service, repo repository.Repository[*Stock], workers int) (units, orders int, err error) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex // guards units, orders and errs
		errs []error
	)
	open := make(chan struct{}) // closed when every worker has started: all sell at once
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-open
			for {
				got, err := reserve(ctx, svc, repo, 1+rand.IntN(3))
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				units += got
				if got > 0 {
					orders++
				}
				mu.Unlock()
				if err != nil || got == 0 {
					return
				}
			}
		}()
	}
	close(open)
	wg.Wait()
	return units, orders, errors.Join(errs...)
}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "inventory:", err)
		os.Exit(1)
	}
}

// envWorker marks a process started by -procs, for tests that run run()
// inside a test binary (see main_test.go).
const envWorker = "LOCKPROOF_INVENTORY_WORKER"

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("inventory", flag.ContinueOnError)
	stock := fs.Int("stock", 200, "opening stock of the SKU")
	workers := fs.Int("workers", 8, "order workers per process")
	procs := fs.Int("procs", 0, "with -redis: run the workers in this many OS processes (0: in this one)")
	redisAddr := fs.String("redis", "", "keep the lock and the stock in the Redis server at this address")
	namespace := fs.String("namespace", "inventory", "with -redis: the namespace of the lock and the stock")
	worker := fs.Bool("worker", false, "internal: run as one of -procs and report the units reserved")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *stock < 1 || *workers < 1 || *procs < 0:
		return errors.New("need -stock >= 1, -workers >= 1 and -procs >= 0")
	case (*procs > 0 || *worker) && *redisAddr == "":
		return errors.New("-procs needs -redis: processes share the stock through Redis")
	}

	var (
		p    provider.Provider
		repo repository.Repository[*Stock]
		opts = &locked.Options{}
	)
	if *redisAddr == "" {
		p = memprovider.New()
		repo = repository.NewMemory[*Stock]()
	} else {
		client := redis.NewClient(&redis.Options{Addr: *redisAddr, ContextTimeoutEnabled: true})
		defer client.Close()
		rp, err := redisprovider.New(client, nil)
		if err != nil {
			return err
		}
		opts.Namespace = *namespace
		p = rp
	}
	defer p.Close()
	svc, err := locked.New(p, opts)
	if err != nil {
		return err
	}
	defer svc.Close()
	if *redisAddr != "" {
		// The repository takes its client and namespace from the Service.
		rr, err := redisrepo.New[*Stock](svc, nil)
		if err != nil {
			return err
		}
		repo = rr
	}

	if *worker {
		units, orders, err := sell(ctx, svc, repo, *workers)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "reserved %d %d\n", units, orders)
		return nil
	}

	if err := repo.DeleteByID(ctx, sku); err != nil { // a fresh stock record
		return err
	}
	if err := repo.Insert(ctx, &Stock{SKU: sku, Available: *stock}); err != nil {
		return err
	}
	var units, orders int
	if *procs == 0 {
		units, orders, err = sell(ctx, svc, repo, *workers)
	} else {
		units, orders, err = sellInProcesses(ctx, *procs, "-redis", *redisAddr, "-namespace", *namespace, "-workers", fmt.Sprint(*workers), "-worker")
	}
	if err != nil {
		return err
	}
	final, err := repo.Find(ctx, sku)
	if err != nil {
		return err
	}
	where := "1 process"
	if *procs > 0 {
		where = fmt.Sprintf("%d processes", *procs)
	}
	fmt.Fprintf(out, "workers reserved %d units in %d orders across %s; stock record: %d reserved, %d available, %d orders\n",
		units, orders, where, final.Reserved, final.Available, final.Orders)
	if units != *stock || final.Reserved != *stock || final.Available != 0 || final.Orders != orders {
		return fmt.Errorf("stock of %d NOT sold exactly once: workers reserved %d, the record says %d reserved and %d available",
			*stock, units, final.Reserved, final.Available)
	}
	fmt.Fprintf(out, "sold exactly %d units: never oversold\n", *stock)
	return nil
}

// sellInProcesses runs n copies of this program with args and adds up the
// units and orders they report.
func sellInProcesses(ctx context.Context, n int, args ...string) (units, orders int, err error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	cmds := make([]*exec.Cmd, n)
	outs := make([]*bytes.Buffer, n)
	for i := range cmds {
		cmd := exec.CommandContext(ctx, exe, args...)
		cmd.Env = append(os.Environ(), envWorker+"=1")
		outs[i] = new(bytes.Buffer)
		cmd.Stdout, cmd.Stderr = outs[i], outs[i]
		if err := cmd.Start(); err != nil {
			for _, c := range cmds[:i] {
				_ = c.Process.Kill()
				_ = c.Wait()
			}
			return 0, 0, fmt.Errorf("start process %d: %w", i, err)
		}
		cmds[i] = cmd
	}
	var errs []error
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("process %d: %w\n%s", i, err, outs[i]))
			continue
		}
		u, o, err := parseReport(outs[i].String())
		if err != nil {
			errs = append(errs, fmt.Errorf("process %d: %w", i, err))
		}
		units, orders = units+u, orders+o
	}
	return units, orders, errors.Join(errs...)
}

// parseReport reads the "reserved UNITS ORDERS" line of a worker's output.
func parseReport(out string) (units, orders int, err error) {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "reserved %d %d", &units, &orders); err == nil {
			return units, orders, nil
		}
	}
	return 0, 0, fmt.Errorf("no report in output:\n%s", out)
}
