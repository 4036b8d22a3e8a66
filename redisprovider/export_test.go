package redisprovider

// KeysOf returns the Redis keys of key under DefaultPrefix (lock, fence
// counter, waiter queue, waiter deadlines), for tests that inspect Redis.
func KeysOf(key string) (lock, fence, queue, alive string) {
	return (&Provider{prefix: DefaultPrefix}).keys(key)
}
