package sqlrepo_test

import (
	"testing"

	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/repository"
	"github.com/lockproof/lockproof/repository/repositorytest"
	"github.com/lockproof/lockproof/repository/sqlrepo"
)

func TestConformancePostgresMemprovider(t *testing.T) {
	t.Cleanup(sqlrepo.SetAllPage(3)) // All crosses pages
	db := openPG(t)
	repositorytest.Harness{
		NewRepo:    func(t *testing.T) repository.Repository[*entity] { return newRepo(t, db, nil) },
		NewService: func(t *testing.T) *locked.Service { return memService(t) },
		Workers:    8,
		Cycles:     100,
	}.Run(t)
}

func TestConformancePostgresRedisprovider(t *testing.T) {
	t.Cleanup(sqlrepo.SetAllPage(3)) // All crosses pages
	db := openPG(t)
	c := redistest.Server(t).Client(t)
	repositorytest.Harness{
		NewRepo:    func(t *testing.T) repository.Repository[*entity] { return newRepo(t, db, nil) },
		NewService: func(t *testing.T) *locked.Service { return redisService(t, c) },
		Workers:    8,
		Cycles:     50,
	}.Run(t)
}

func TestConformanceSQLiteMemprovider(t *testing.T) {
	t.Cleanup(sqlrepo.SetAllPage(3)) // All crosses pages
	db := openSQLite(t)
	repositorytest.Harness{
		NewRepo: func(t *testing.T) repository.Repository[*entity] {
			return newRepo(t, db, &sqlrepo.Options{Dialect: sqlrepo.SQLite})
		},
		NewService: func(t *testing.T) *locked.Service { return memService(t) },
		Workers:    8,
		Cycles:     100,
	}.Run(t)
}
