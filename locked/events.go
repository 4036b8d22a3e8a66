package locked

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
)

// EventType says what happened to a lease.
type EventType int

// Event types.
const (
	Acquired      EventType = iota + 1 // a lease was granted (or restored)
	Extended                           // a lease's TTL was extended
	Released                           // a lease was released by its holder
	Lost                               // a lease lapsed or was found taken over
	ForceReleased                      // a key was freed by ForceRelease or an owner or admin release
	AcquireFailed                      // an acquire returned an error (Err says which)
)

func (t EventType) String() string {
	switch t {
	case Acquired:
		return "acquired"
	case Extended:
		return "extended"
	case Released:
		return "released"
	case Lost:
		return "lost"
	case ForceReleased:
		return "force released"
	case AcquireFailed:
		return "acquire failed"
	}
	return "EventType(?)"
}

// Event reports a change to a lease, to the functions given to Subscribe
// (and Options.OnEvent).
type Event struct {
	Type  EventType
	Key   string // as the caller named it, without namespace
	Fence uint64 // zero for ForceReleased and AcquireFailed
	Token string // the lease's token; for ForceReleased the freed holder's, if known
	Owner string // the owner part of Token
	Err   error  // for Lost and AcquireFailed: why
}

// events is a Service's subscribers: copied on write, so emitting reads one
// atomic pointer, and with no subscriber costs nothing more.
type events struct {
	mu sync.Mutex // serialises subscribe and unsubscribe
	// subs is written under mu and read without it.
	subs atomic.Pointer[[]*subscriber]
}

type subscriber struct{ fn func(Event) }

func (ev *events) subscribe(fn func(Event)) func() {
	sub := &subscriber{fn: fn}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var next []*subscriber
	if cur := ev.subs.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, sub)
	ev.subs.Store(&next)
	var once sync.Once
	return func() { once.Do(func() { ev.unsubscribe(sub) }) }
}

func (ev *events) unsubscribe(sub *subscriber) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	cur := ev.subs.Load()
	if cur == nil {
		return
	}
	next := make([]*subscriber, 0, len(*cur))
	for _, s := range *cur {
		if s != sub {
			next = append(next, s)
		}
	}
	if len(next) == 0 {
		ev.subs.Store(nil)
		return
	}
	ev.subs.Store(&next)
}

// on reports whether anyone subscribes: a caller on a hot path checks it
// before it builds the Event.
func (ev *events) on() bool { return ev.subs.Load() != nil }

func (ev *events) emit(e Event) {
	subs := ev.subs.Load()
	if subs == nil {
		return
	}
	e.Owner = ownerOf(e.Token)
	for _, s := range *subs {
		s.fn(e)
	}
}

// Subscribe calls fn, synchronously and after the functions subscribed
// before it, for every later lease event of this
// Service, until the returned function is called (calling it again does
// nothing). fn must be quick and must not call back into the lease that the
// event is about. With no subscriber, events cost nothing. Subscribing to a
// nil Service returns a no-op.
func (s *Service) Subscribe(fn func(Event)) (unsubscribe func()) {
	if s == nil || fn == nil {
		return func() {}
	}
	unsubscribe = s.events.subscribe(fn)
	s.armAll() // the open leases' Lost events at expiry need their timers
	return unsubscribe
}

// SlogEvents returns an event subscriber that logs each event to logger:
// failures (Lost, AcquireFailed) at Warn, force releases at Info, the rest
// at Debug, with the attributes key, fence, owner and err. Pass it to
// Subscribe or Options.OnEvent. A nil logger means slog.Default().
func SlogEvents(logger *slog.Logger) func(Event) {
	if logger == nil {
		logger = slog.Default()
	}
	return func(e Event) {
		level := slog.LevelDebug
		switch e.Type {
		case Lost, AcquireFailed:
			level = slog.LevelWarn
		case ForceReleased:
			level = slog.LevelInfo
		}
		ctx := context.Background()
		if !logger.Enabled(ctx, level) {
			return
		}
		attrs := []slog.Attr{slog.String("key", e.Key)}
		if e.Fence != 0 {
			attrs = append(attrs, slog.Uint64("fence", e.Fence))
		}
		if e.Owner != "" {
			attrs = append(attrs, slog.String("owner", e.Owner))
		}
		if e.Err != nil {
			attrs = append(attrs, slog.String("err", e.Err.Error()))
		}
		logger.LogAttrs(ctx, level, "lockproof: "+e.Type.String(), attrs...)
	}
}
