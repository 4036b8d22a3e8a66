package main

import (
	_ "github.com/bsm/redislock"
	_ "github.com/go-redsync/redsync/v4"
	_ "github.com/lockproof/lockproof/redisprovider"
)

func main() {}
