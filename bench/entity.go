package main

// The entity cycle (section 5 of the comparison) times, per op,
//
//	lock → load → modify → save → release
//
// through locked.Load on the Redis provider and a redisrepo.Repository
// (Save checks the proof's token and fence in the same Lua script as the
// write), next to the same number of raw go-redis round trips on the same
// node: SET NX PX, GET, SET, DEL. The run, the Markdown table and the RATIO
// line entity_cycle_vs_floor pick the two cases up from entityCases.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/redisprovider"
	"github.com/lockproof/lockproof/repository"
	"github.com/lockproof/lockproof/repository/redisrepo"
)

const secEntity = "entity"

// counter is the entity of the cycle: one number, stored as JSON.
type counter struct {
	Name string
	N    int64
}

// Kind implements persistent.Persistent.
func (*counter) Kind() string { return "benchcounter" }

// ID implements persistent.Persistent.
func (c *counter) ID() string { return c.Name }

// entityCases returns the entity-cycle contenders on the Redis node of c,
// where p keeps its locks. If the set-up fails, both cases report it.
func entityCases(c *redis.Client, p *redisprovider.Provider) []opCase {
	const (
		id        = "entity"
		floorLock = "bench:e:floor"
		floorData = "bench:e:floor:data"
	)
	lockproof, err := entityCycle(c, p, id)
	floor := func(ctx context.Context) error {
		ok, err := c.SetNX(ctx, floorLock, "1 bench-floor", ttl).Result()
		if err == nil && !ok {
			err = errors.New("key was held")
		}
		if err != nil {
			return err
		}
		n, err := c.Get(ctx, floorData).Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if err := c.Set(ctx, floorData, strconv.FormatInt(n+1, 10), 0).Err(); err != nil {
			return err
		}
		return c.Del(ctx, floorLock).Err()
	}
	if err != nil {
		fail := func(context.Context) error { return fmt.Errorf("entity cycle set-up: %w", err) }
		lockproof, floor = fail, fail
	}
	return []opCase{
		{secEntity, "entity_floor", "raw go-redis SET NX PX + GET + SET + DEL (four-round-trip floor)", "raw SET NX, GET, SET, DEL (floor)",
			[]string{"set", "get", "del"}, floor},
		{secEntity, "entity_lockproof", "lockproof locked.Load + N++ + redisrepo Save + Close", "lockproof Load, Save, Close",
			[]string{"evalsha", "eval", "hget"}, lockproof},
	}
}

// entityCycle stores the entity id and returns the lockproof cycle on it.
// The Service it uses holds no resources between ops (each op closes its
// proof, and Services start no goroutines of their own without
// auto-renewal), so it needs no Close.
func entityCycle(c *redis.Client, p *redisprovider.Provider, id string) (func(context.Context) error, error) {
	svc, err := locked.New(p, &locked.Options{TTL: ttl, Timeout: time.Minute})
	if err != nil {
		return nil, err
	}
	repo, err := redisrepo.New[*counter](svc, nil)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := repo.Insert(ctx, &counter{Name: id}); err != nil && !errors.Is(err, repository.ErrExists) {
		return nil, err
	}
	return func(ctx context.Context) error {
		l, err := locked.Load(ctx, svc, repo, id)
		if err != nil {
			return err
		}
		l.Entity().N++
		err = repo.Save(ctx, l)
		if cerr := l.Close(); err == nil {
			err = cerr
		}
		return err
	}, nil
}
