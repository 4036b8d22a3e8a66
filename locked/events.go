package locked

// EventType says what happened to a lease.
type EventType int

// Event types.
const (
	Acquired      EventType = iota + 1 // a lease was granted (or restored)
	Extended                           // a lease's TTL was extended
	Released                           // a lease was released by its holder
	Lost                               // a lease lapsed or was found taken over
	ForceReleased                      // a key was freed by ForceRelease
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
	}
	return "EventType(?)"
}

// Event reports a change to a lease, through Options.OnEvent.
type Event struct {
	Type  EventType
	Key   string // as the caller named it, without namespace
	Fence uint64 // zero for ForceReleased
	Token string // the lease's token; "" for ForceReleased
	Owner string // the owner part of Token
	Err   error  // for Lost: why
}
