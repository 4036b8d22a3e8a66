package main

// The entity cycle (section 5 of the comparison) times, per op,
//
//	lock → load → modify → save → release
//
// through locked.Load on the Redis provider and a redisrepo.Repository,
// next to raw go-redis round trips of the same shape on the same node. Lock
// and load (docs/decisions.md) makes Load one round trip: the acquire
// script reads the record when it grants. Save checks the proof's token and
// fence in the same Lua script as the write, and Close is the release
// script: three round trips in all.
//
// The floor (entity_floor, the base of the RATIO line entity_cycle_vs_floor)
// is therefore the least a client can send for three round trips of that
// shape: one script that takes the lock with SET NX PX and, only if it was
// taken, GETs the data (scripts/entity_floor.lua: a read that must not run
// without the lock cannot be a plain pipeline of SET NX and GET, whose GET
// runs whether or not the lock was taken), then a plain SET of the data and
// a plain DEL of the lock. It checks no token on DEL and no fence on SET: it
// is a floor, not a safe lock. The four-round-trip floor that the cycle was
// compared with before lock and load (SET NX PX, GET, SET, DEL: the shape of
// Load as acquire, then HGET) stays in the table as entity_floor4, with its
// RATIO line entity_cycle_vs_floor4, and so does the lockproof cycle with
// Load reading through a plain Finder (entity_lockproof_find: four round
// trips), so that one run shows what lock and load saves. The run, the
// Markdown table and the RATIO lines pick the cases up from entityCases.

import (
	"context"
	_ "embed"
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

//go:embed scripts/entity_floor.lua
var entityFloorSrc string

// entityFloorScript is the floor's lock and read (scripts/entity_floor.lua).
var entityFloorScript = redis.NewScript(entityFloorSrc)

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
	lockproof, viaFind, err := entityCycle(c, p, id)
	floor := func(ctx context.Context) error { // lock and read in one script, SET, DEL
		res, err := entityFloorScript.Run(ctx, c, []string{floorLock, floorData}, "1 bench-floor", ttl.Milliseconds()).Slice()
		if err != nil {
			return err
		}
		if taken, _ := res[0].(int64); taken != 1 {
			return errors.New("key was held")
		}
		var n int64
		if s, ok := res[1].(string); ok {
			if n, err = strconv.ParseInt(s, 10, 64); err != nil {
				return err
			}
		}
		if err := c.Set(ctx, floorData, strconv.FormatInt(n+1, 10), 0).Err(); err != nil {
			return err
		}
		return c.Del(ctx, floorLock).Err()
	}
	floor4 := func(ctx context.Context) error { // the four-round-trip floor of before lock and load
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
		lockproof, viaFind, floor, floor4 = fail, fail, fail, fail
	}
	return []opCase{
		{secEntity, "entity_floor", "raw go-redis Lua SET NX PX + GET, then SET, DEL (three-round-trip floor)", "raw Lua lock+GET, SET, DEL (floor)",
			[]string{"evalsha", "eval", "set", "del"}, floor}, // time in Redis counts the script's SET twice (in set and in evalsha)
		{secEntity, "entity_floor4", "raw go-redis SET NX PX + GET + SET + DEL (four-round-trip floor, before lock and load)", "raw SET NX, GET, SET, DEL",
			[]string{"set", "get", "del"}, floor4},
		{secEntity, "entity_lockproof", "lockproof locked.Load (lock and load) + N++ + redisrepo Save + Close", "lockproof Load, Save, Close",
			[]string{"evalsha", "eval"}, lockproof},
		{secEntity, "entity_lockproof_find", "lockproof locked.Load through a plain Finder (acquire, then HGET: before lock and load) + N++ + Save + Close", "lockproof Load via Find, Save, Close",
			[]string{"evalsha", "eval", "hget"}, viaFind},
	}
}

// entityCycle stores the entity id and returns the lockproof cycle on it,
// and the same cycle with Load reading through a plain Finder (acquire,
// then HGET: Load before lock and load). The Service it uses holds no
// resources between ops (each op closes its proof, and Services start no
// goroutines of their own without auto-renewal), so it needs no Close.
func entityCycle(c *redis.Client, p *redisprovider.Provider, id string) (loaded, found func(context.Context) error, err error) {
	svc, err := locked.New(p, &locked.Options{TTL: ttl, Timeout: time.Minute})
	if err != nil {
		return nil, nil, err
	}
	repo, err := redisrepo.New[*counter](svc, nil)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := repo.Insert(ctx, &counter{Name: id}); err != nil && !errors.Is(err, repository.ErrExists) {
		return nil, nil, err
	}
	cycle := func(f locked.Finder[*counter]) func(context.Context) error {
		return func(ctx context.Context) error {
			l, err := locked.Load(ctx, svc, f, id)
			if err != nil {
				return err
			}
			l.Entity().N++
			err = repo.Save(ctx, l)
			if cerr := l.Close(); err == nil {
				err = cerr
			}
			return err
		}
	}
	return cycle(repo), cycle(finderOnly{repo}), nil
}

// finderOnly hides every method of a repository but Find, so that
// locked.Load locks and then reads with Find.
type finderOnly struct {
	r *redisrepo.Repository[*counter]
}

func (f finderOnly) Find(ctx context.Context, id string) (*counter, error) { return f.r.Find(ctx, id) }
