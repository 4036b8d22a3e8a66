// Command shop sells one product's stock from several OS processes at once
// and checks that it is never oversold.
//
// Each sale locks the product with locked.Load (which claims the record
// with the proof's fence), checks the stock, and saves the decremented
// stock with the proof; the database refuses the write of a proof whose
// fence is older than the record's. The product lives in SQL via sqlrepo:
//
//	go run .                                   # SQLite file + in-process locks, goroutines
//	go run . -dsn postgres://... -procs 4      # PostgreSQL, locks in PostgreSQL (pgprovider, exact fencing)
//	go run . -dsn postgres://... -redis ADDR   # PostgreSQL, locks in Redis
//
// With -dsn, -procs copies of this program (re-executed with -child) sell
// concurrently; the parent sums what they sold and checks the product.
package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
	"github.com/redis/go-redis/v9"
	_ "modernc.org/sqlite" // driver "sqlite"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/provider/pgprovider"
	"github.com/lockproof/lockproof/redisprovider"
	"github.com/lockproof/lockproof/repository/sqlrepo"
)

// Product is the entity; its lock key is "product:<SKU>".
type Product struct {
	SKU   string
	Stock int64
	Sold  int64
}

// Kind implements persistent.Persistent.
func (*Product) Kind() string { return "product" }

// ID implements persistent.Persistent.
func (p *Product) ID() string { return p.SKU }

type config struct {
	dsn, redis, sku string
	procs, buyers   int
	orders          int
	stock           int64
}

func main() {
	var c config
	child := flag.Bool("child", false, "internal: run as one selling process and print the units sold")
	flag.StringVar(&c.dsn, "dsn", "", "PostgreSQL URL; default: an SQLite file in a temporary directory")
	flag.StringVar(&c.redis, "redis", "", "take locks from this Redis server (with -dsn); default: PostgreSQL (pgprovider)")
	flag.IntVar(&c.procs, "procs", 4, "selling processes (with -dsn)")
	flag.IntVar(&c.buyers, "buyers", 4, "buyers (goroutines) per process")
	flag.IntVar(&c.orders, "orders", 50, "orders per buyer, 1 to 3 units each")
	flag.Int64Var(&c.stock, "stock", 300, "initial stock (below the demand, so it sells out)")
	flag.StringVar(&c.sku, "sku", "widget", "the product's SKU")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var err error
	switch {
	case *child:
		var sold int64
		if sold, err = sell(ctx, c, os.Getenv("SHOP_DIR")); err == nil {
			fmt.Println(sold)
		}
	default:
		err = run(ctx, c)
	}
	if err != nil {
		log.Fatal("shop: ", err)
	}
}

// stack is what one process uses: the database, a Service and the repository.
type stack struct {
	db    *sql.DB
	svc   *locked.Service
	repo  *sqlrepo.Repository[*Product]
	close func()
}

func open(ctx context.Context, c config, dir string) (*stack, error) {
	var (
		p     provider.Provider
		opts  sqlrepo.Options
		db    *sql.DB
		err   error
		undo  []func()
		close = func() {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	)
	if c.dsn == "" {
		db, err = sql.Open("sqlite", "file:"+filepath.Join(dir, "shop.db")+"?_pragma=busy_timeout(10000)")
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(1) // SQLite has one writer
		opts.Dialect = sqlrepo.SQLite
		p = memprovider.New()
	} else {
		if db, err = sql.Open("pgx", c.dsn); err != nil {
			return nil, err
		}
	}
	undo = append(undo, func() { db.Close() })
	switch {
	case c.dsn == "":
	case c.redis != "":
		rdb := redis.NewClient(&redis.Options{Addr: c.redis, ContextTimeoutEnabled: true})
		undo = append(undo, func() { rdb.Close() })
		if p, err = redisprovider.New(rdb, nil); err != nil {
			close()
			return nil, err
		}
	default:
		pool, err := pgxpool.New(ctx, c.dsn)
		if err != nil {
			close()
			return nil, err
		}
		undo = append(undo, pool.Close)
		pp, err := pgprovider.New(pool, nil)
		if err != nil {
			close()
			return nil, err
		}
		if err := pp.CreateSchema(ctx); err != nil {
			pp.Close()
			close()
			return nil, err
		}
		p, opts.Hold = pp, pp // same database: Save checks the lock row too
	}
	undo = append(undo, func() { p.Close() })
	svc, err := locked.New(p, &locked.Options{TTL: 10 * time.Second, Timeout: time.Minute})
	if err != nil {
		close()
		return nil, err
	}
	undo = append(undo, func() { svc.Close() })
	repo, err := sqlrepo.New[*Product](db, &opts)
	if err != nil {
		close()
		return nil, err
	}
	return &stack{db: db, svc: svc, repo: repo, close: close}, nil
}

// buy sells qty units if they are in stock; it reports the units sold.
func buy(ctx context.Context, s *stack, sku string, qty int64) (int64, error) {
	l, err := locked.Load(ctx, s.svc, s.repo, sku)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	p := l.Entity()
	if p.Stock < qty {
		return 0, nil // sold out for this order: never oversell
	}
	p.Stock -= qty
	p.Sold += qty
	if err := s.repo.Save(ctx, l); err != nil {
		return 0, err
	}
	return qty, nil
}

// sell runs c.buyers goroutines × c.orders orders against an existing
// product and returns the units sold.
func sell(ctx context.Context, c config, dir string) (int64, error) {
	s, err := open(ctx, c, dir)
	if err != nil {
		return 0, err
	}
	defer s.close()
	var (
		mu   sync.Mutex // guards sold and errs
		sold int64
		errs []error
		wg   sync.WaitGroup
	)
	for range c.buyers {
		wg.Go(func() {
			for range c.orders {
				n, err := buy(ctx, s, c.sku, 1+rand.Int64N(3))
				mu.Lock()
				sold += n
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	return sold, errors.Join(errs...)
}

// run stocks the product, sells it from processes (or, without -dsn, from
// this process) and checks the result.
func run(ctx context.Context, c config) error {
	dir, err := os.MkdirTemp("", "shop")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	s, err := open(ctx, c, dir)
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.repo.CreateTable(ctx); err != nil {
		return err
	}
	if err := s.repo.DeleteByID(ctx, c.sku); err != nil {
		return err
	}
	if err := s.repo.Insert(ctx, &Product{SKU: c.sku, Stock: c.stock}); err != nil {
		return err
	}

	var sold int64
	procs := 1
	if c.dsn == "" {
		// SQLite with in-process locks: the buyers are this process's.
		if sold, err = sell(ctx, c, dir); err != nil {
			return err
		}
	} else {
		procs = c.procs
		if sold, err = sellInProcesses(ctx, c, dir); err != nil {
			return err
		}
	}
	p, err := s.repo.Find(ctx, c.sku)
	if err != nil {
		return err
	}
	fmt.Printf("%d processes × %d buyers × %d orders: sold %d of %d, %d left\n", procs, c.buyers, c.orders, sold, c.stock, p.Stock)
	if p.Stock < 0 || p.Sold != sold || p.Stock+p.Sold != c.stock {
		return fmt.Errorf("oversold or lost a sale: stored %+v, the buyers sold %d of %d", *p, sold, c.stock)
	}
	fmt.Println("ok: never oversold, every sale counted")
	return nil
}

func sellInProcesses(ctx context.Context, c config, dir string) (int64, error) {
	args := []string{"-child", "-dsn", c.dsn, "-redis", c.redis, "-sku", c.sku,
		"-buyers", strconv.Itoa(c.buyers), "-orders", strconv.Itoa(c.orders)}
	cmds := make([]*exec.Cmd, c.procs)
	outs := make([]*bytes.Buffer, c.procs)
	for i := range cmds {
		cmds[i] = exec.CommandContext(ctx, os.Args[0], args...)
		// SHOP_AS_MAIN lets a test binary stand in for the program.
		cmds[i].Env = append(os.Environ(), "SHOP_DIR="+dir, "SHOP_AS_MAIN=1")
		outs[i] = new(bytes.Buffer)
		cmds[i].Stdout, cmds[i].Stderr = outs[i], outs[i]
		if err := cmds[i].Start(); err != nil {
			return 0, err
		}
	}
	var (
		sold int64
		errs []error
	)
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("process %d: %w\n%s", i, err, outs[i]))
			continue
		}
		sc := bufio.NewScanner(outs[i])
		var last string
		for sc.Scan() {
			last = strings.TrimSpace(sc.Text())
		}
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("process %d printed %q", i, outs[i]))
			continue
		}
		sold += n
	}
	return sold, errors.Join(errs...)
}
