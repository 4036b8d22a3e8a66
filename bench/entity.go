package main

// The entity cycle (section 5 of the comparison) is measured once a
// Redis-backed repository exists. It will time, per op,
//
//	lock → load → modify → save → release
//
// through locked.Load on a Redis provider and that repository (Save checks
// the proof's fence in the same Lua script as the write), next to the same
// number of raw go-redis round trips on one node: SET NX PX, GET, SET, DEL.
//
// To add it, return those two cases from entityCases (section secEntity, ids
// "entity_lockproof" and "entity_floor", with the commands each sends); the run, the Markdown table and
// the RATIO line entity_cycle_vs_floor pick them up with no other change.
// Until then the report says the section is pending.

import (
	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/redisprovider"
)

const secEntity = "entity"

// entityCases returns the entity-cycle contenders on the Redis node of c,
// or nil while lockproof has no Redis repository.
func entityCases(c *redis.Client, p *redisprovider.Provider) []opCase {
	_, _ = c, p
	return nil
}
