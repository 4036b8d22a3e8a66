package redisprovider

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// RunAcquireScript runs the acquire script once for key under DefaultPrefix
// with the given request nonce, as the provider's try does, for tests of
// its re-send and tombstone paths.
func RunAcquireScript(ctx context.Context, c redis.UniversalClient, key, token string, ttlMs int64, join bool, leaseMs int64, nonce string) ([]any, error) {
	lock, fence, queue, alive := KeysOf(key)
	j := 0
	if join {
		j = 1
	}
	return acquireScript.Run(ctx, c, []string{lock, fence, queue, alive}, token, ttlMs, j, leaseMs, nonce).Slice()
}

// RunGiveUpScript runs the give-up script once for key under DefaultPrefix,
// as the clean-up goroutine does, publishing wake-ups on channel; lost marks the try with nonce as lost.
func RunGiveUpScript(ctx context.Context, c redis.UniversalClient, key, token, channel string, lost bool, ttlMs int64, nonce string) error {
	lock, _, queue, alive := KeysOf(key)
	l := 0
	if lost {
		l = 1
	}
	return giveUpScript.Eval(ctx, c, []string{lock, queue, alive}, token, channel, key, l, ttlMs, nonce).Err()
}

// RunReleaseScript runs the release script once for key under DefaultPrefix,
// publishing wake-ups on channel (and handoffs on channel + ":" + a
// waiter's instance), with no re-send marker.
func RunReleaseScript(ctx context.Context, c redis.UniversalClient, key, token, channel string) (int64, error) {
	lock, fence, queue, alive := KeysOf(key)
	return releaseScript.Run(ctx, c, []string{lock, queue, lock + ":rel:" + token, fence, alive}, token, channel, key, "r1", 0).Int64()
}

// RunWaitScript runs the acquire script once for key under DefaultPrefix
// as try number seq of an Acquire call with nonce on a Provider with
// instance id ("" for one that takes no handoff), joining the queue if
// refused.
func RunWaitScript(ctx context.Context, c redis.UniversalClient, key, token string, ttlMs, leaseMs int64, nonce, instance string, seq int) ([]any, error) {
	lock, fence, queue, alive := KeysOf(key)
	return acquireScript.Run(ctx, c, []string{lock, fence, queue, alive}, token, ttlMs, 1, leaseMs, nonce, instance, seq).Slice()
}

// GrantChannel returns the channel on which p is handed keys ("" when
// handoff is off).
func GrantChannel(p *Provider) string { return p.grants }
