package pgprovider

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// listen owns the LISTEN connection: it subscribes, wakes the waiters of
// each notified key, and on any failure reconnects after a pause, waking
// every waiter (they may have missed a release meanwhile). It returns when
// ctx ends (Close).
func (p *Provider) listen(ctx context.Context) {
	defer close(p.done)
	for {
		p.listenOnce(ctx)
		p.wakeAll()
		select {
		case <-ctx.Done():
			return
		case <-time.After(p.poll / 2): // reconnect pause; waiters poll meanwhile
		}
	}
}

// listenOnce holds one connection of its own (not one of the pool's: it
// is busy for the Provider's whole life), made from the pool's config.
func (p *Provider) listenOnce(ctx context.Context) {
	c, err := pgx.ConnectConfig(ctx, p.pool.Config().ConnConfig.Copy())
	if err != nil {
		return
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = c.Close(cctx)
	}()
	if _, err := c.Exec(ctx, `LISTEN "`+p.channel+`"`); err != nil {
		return
	}
	p.wakeAll() // subscribed: waiters that tried before this retry now
	for {
		n, err := c.WaitForNotification(ctx)
		if err != nil {
			return
		}
		p.wake(n.Payload)
	}
}

func (p *Provider) addWaiter(key string, ch chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.waiters[key]
	if m == nil {
		m = make(map[chan struct{}]struct{})
		p.waiters[key] = m
	}
	m[ch] = struct{}{}
}

func (p *Provider) removeWaiter(key string, ch chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.waiters[key], ch)
	if len(p.waiters[key]) == 0 {
		delete(p.waiters, key)
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default: // already signalled
	}
}

func (p *Provider) wake(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for ch := range p.waiters[key] {
		signal(ch)
	}
}

func (p *Provider) wakeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.waiters {
		for ch := range m {
			signal(ch)
		}
	}
}
