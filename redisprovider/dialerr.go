package redisprovider

import "context"

// cannotHaveApplied reports whether err, from a go-redis call on the provider's
// client, shows that the request cannot have been applied.
//
// go-redis re-sends a request after a retryable failure (a lost reply,
// EOF, a reset, a timeout, a failed dial, a pool timeout, LOADING and
// similar replies) and returns only the error of its last attempt, or
// ctx's bare error if ctx ended in a back-off or while it redialled. That
// error says nothing about the earlier attempts: an attempt that ran in
// Redis and lost its reply is followed by dials that fail (Redis killed,
// the path to it gone; TestUnreachableAfterLostReply) exactly as for a call
// that never reached Redis, and go-redis exposes no attempt count. So for
// a client that may re-send, every failure is an unknown outcome.
//
// A client that never re-sends (MaxRetries -1) makes one attempt, and its
// error shows what happened: a dial error, a pool timeout, a closed
// client or an error reply mean nothing was applied (notSent); so does
// ctx's bare error, which go-redis v9 returns only while it waits for a
// connection (a pool turn, a dial, the connection's handshake), before the
// request is written: once written, a deadline surfaces as the socket's
// i/o timeout, a net error. See docs/decisions.md, entry 44.
func (p *Provider) cannotHaveApplied(err error) bool {
	return p.resend == 0 && (notSent(err) || err == context.DeadlineExceeded || err == context.Canceled)
}
