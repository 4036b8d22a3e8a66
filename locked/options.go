package locked

import "time"

// Defaults used when Options leave a field zero.
const (
	DefaultTTL     = 30 * time.Second
	DefaultTimeout = 5 * time.Second
)

// Options configure a Service. A nil *Options, and every zero field, means
// the default.
type Options struct {
	// TTL is how long a lease lives unless extended. Default DefaultTTL.
	TTL time.Duration

	// Timeout bounds how long Acquire waits for a held key, on top of the
	// caller's context. Default DefaultTimeout.
	Timeout time.Duration

	// AutoRenew extends every lease at a third of its TTL until it is
	// released, so a lease only lapses if its holder's process stops or the
	// store is unreachable for most of a TTL. Default false.
	AutoRenew bool

	// Owner names this Service's holder in tokens and State. Default: a new
	// random UUID per Service. Tokens stay unique even when several
	// processes share an Owner.
	Owner string

	// Namespace, if set, prefixes every key in the store with
	// Namespace + ":" so several apps can share one store. Keys reported
	// back (Lease.Key, events, errors) are the caller's, without it.
	// Default "" (no prefix).
	Namespace string

	// OnEvent, if set, is called synchronously for every lease event. It
	// must be quick and must not call back into the lease. Default nil.
	OnEvent func(Event)
}

// Option adjusts one acquire.
type Option func(*callOptions)

type callOptions struct {
	ttl       time.Duration
	timeout   time.Duration
	autoRenew bool
	bad       error // the first invalid option, reported by the call
}

func (o *callOptions) reject(arg string, d time.Duration) {
	if o.bad == nil {
		o.bad = invalid(arg, "must be positive, got "+d.String())
	}
}

// WithTTL sets this lease's time to live; it must be positive.
// Default: the Service's Options.TTL.
func WithTTL(d time.Duration) Option {
	return func(o *callOptions) {
		if d <= 0 {
			o.reject("ttl", d)
		}
		o.ttl = d
	}
}

// WithTimeout sets how long this acquire waits for a held key; it must be
// positive. Default: the Service's Options.Timeout.
func WithTimeout(d time.Duration) Option {
	return func(o *callOptions) {
		if d <= 0 {
			o.reject("timeout", d)
		}
		o.timeout = d
	}
}

// WithAutoRenew renews this lease at a third of its TTL until it is
// released. Default: the Service's Options.AutoRenew.
func WithAutoRenew() Option {
	return func(o *callOptions) { o.autoRenew = true }
}
