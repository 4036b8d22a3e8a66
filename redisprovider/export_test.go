package redisprovider

// KeysOf returns the Redis keys of key under DefaultPrefix (lock, fence
// counter, waiter queue, waiter deadlines), for tests that inspect Redis.
func KeysOf(key string) (lock, fence, queue, alive string) {
	return (&Provider{prefix: DefaultPrefix}).keys(key)
}

// ParseHandoff is parseHandoff, for tests of the handoff message format.
func ParseHandoff(msg string) (key, token, nonce string, fence uint64, elapsedMs int64, seq int, ok bool) {
	key, token, nonce, h, ok := parseHandoff(msg)
	return key, token, nonce, h.fence, h.elapsed.Milliseconds(), h.seq, ok
}
