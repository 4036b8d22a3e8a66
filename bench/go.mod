module github.com/lockproof/lockproof/bench

go 1.26.0

replace github.com/lockproof/lockproof => ../

require (
	github.com/bsm/redislock v0.9.4
	github.com/go-redsync/redsync/v4 v4.15.0
	github.com/jackc/pgx/v5 v5.12.0
	github.com/lockproof/lockproof v0.0.0-00010101000000-000000000000
	github.com/redis/go-redis/v9 v9.17.3
	go.uber.org/goleak v1.3.0
)

require (
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/puddle/v2 v2.2.3 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/text v0.41.0 // indirect
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/dgryski/go-rendezvous v0.0.0-20200823014737-9f7001d12a5f // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/hashicorp/errwrap v1.1.0 // indirect
	github.com/hashicorp/go-multierror v1.1.1 // indirect
	github.com/lockproof/lockproof/provider/pgprovider v0.0.0-00010101000000-000000000000
	github.com/lockproof/lockproof/repository/sqlrepo v0.0.0-00010101000000-000000000000
)

replace github.com/lockproof/lockproof/repository/sqlrepo => ../repository/sqlrepo

replace github.com/lockproof/lockproof/provider/pgprovider => ../provider/pgprovider
