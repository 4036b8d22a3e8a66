package redistest

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// A CommandLog is a go-redis hook that records the commands a client sends,
// one entry per round trip: a command's name, or "pipeline" for a pipeline.
// A new connection's handshake (HELLO and CLIENT SETINFO, alone or in a
// pipeline) is not a request and is left out: HELLO and CLIENT commands are
// not logged. Create one with LogCommands.
type CommandLog struct {
	mu   sync.Mutex
	cmds []string // guarded by mu
}

// LogCommands adds a CommandLog to c and returns it.
func LogCommands(c redis.UniversalClient) *CommandLog {
	l := &CommandLog{}
	c.AddHook(l)
	return l
}

// Take returns the commands recorded since the last Take.
func (l *CommandLog) Take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.cmds
	l.cmds = nil
	return out
}

// DialHook implements redis.Hook.
func (l *CommandLog) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook.
func (l *CommandLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !handshake(cmd) {
			l.add(cmd.Name())
		}
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook implements redis.Hook.
func (l *CommandLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && !handshake(cmds[0]) {
			l.add("pipeline")
		}
		return next(ctx, cmds)
	}
}

func (l *CommandLog) add(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cmds = append(l.cmds, name)
}

// handshake reports whether cmd is one go-redis sends to set up a new
// connection.
func handshake(cmd redis.Cmder) bool {
	return cmd.Name() == "hello" || cmd.Name() == "client"
}
