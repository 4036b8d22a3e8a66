package sqlrepo_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/repository"
	"github.com/lockproof/lockproof/repository/sqlrepo"
)

// Account is an entity: its lock key is "account:" + Number, its table
// "account".
type Account struct {
	Number  string
	Balance int64
}

func (*Account) Kind() string { return "account" }
func (a *Account) ID() string { return a.Number }

// Entities in SQLite (pure Go, modernc.org/sqlite), locks in memory: lock,
// load (which claims the record with the proof's fence), modify, save. With
// PostgreSQL, open the pgx driver and leave Options.Dialect at its default.
func ExampleNew() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sqlrepo-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite", filepath.Join(dir, "bank.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // SQLite has one writer

	p := memprovider.New()
	defer p.Close()
	svc, err := locked.New(p, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close()

	accounts, err := sqlrepo.New[*Account](db, &sqlrepo.Options{Dialect: sqlrepo.SQLite})
	if err != nil {
		log.Fatal(err)
	}
	if err := accounts.CreateTable(ctx); err != nil {
		log.Fatal(err)
	}
	if err := accounts.Insert(ctx, &Account{Number: "42", Balance: 100}); err != nil {
		log.Fatal(err)
	}

	l, err := locked.Load(ctx, svc, accounts, "42")
	if err != nil {
		log.Fatal(err)
	}
	l.Entity().Balance -= 30
	if err := accounts.Save(ctx, l); err != nil {
		log.Fatal(err)
	}
	l.Close()

	// The old proof cannot write any more.
	err = accounts.Save(ctx, l)
	fmt.Println("save with a closed proof refused:", errors.Is(err, locked.ErrNotHeld))

	a, err := accounts.Find(ctx, "42")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("balance:", a.Balance)
	// Output:
	// save with a closed proof refused: true
	// balance: 70
}

// Two aggregates saved in one transaction: both or neither.
func ExampleRepository_WithTx() {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:tx-example?mode=memory&cache=shared")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	p := memprovider.New()
	defer p.Close()
	svc, err := locked.New(p, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close()
	accounts, err := sqlrepo.New[*Account](db, &sqlrepo.Options{Dialect: sqlrepo.SQLite})
	if err != nil {
		log.Fatal(err)
	}
	if err := accounts.CreateTable(ctx); err != nil {
		log.Fatal(err)
	}
	for _, n := range []string{"a", "b"} {
		if err := accounts.Insert(ctx, &Account{Number: n, Balance: 100}); err != nil {
			log.Fatal(err)
		}
	}

	ls, err := locked.LoadAll(ctx, svc, accounts, []string{"a", "b"})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ls[0].Entity().Balance -= 25
	ls[1].Entity().Balance += 25

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	inTx := accounts.WithTx(tx)
	for _, l := range ls {
		if err := inTx.Save(ctx, l); err != nil {
			tx.Rollback()
			log.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		log.Fatal(err)
	}
	for _, n := range []string{"a", "b"} {
		a, err := accounts.Find(ctx, n)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(n, a.Balance)
	}
	_, err = accounts.Find(ctx, "c")
	fmt.Println("c:", errors.Is(err, repository.ErrNotFound))
	// Output:
	// a 75
	// b 125
	// c: true
}

// The DDL of a repository's table, to put into migrations.
func ExampleSchema() {
	ddl, err := sqlrepo.Schema(sqlrepo.Postgres, "account")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ddl)
	// Output:
	// CREATE TABLE IF NOT EXISTS "account" (
	// 	id    TEXT PRIMARY KEY,
	// 	data  BYTEA,
	// 	fence BIGINT NOT NULL DEFAULT 0
	// )
}
