package pgprovider

import (
	"context"
	"strconv"
	"strings"
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
		if key, token, ok := parseWake(n.Payload); ok {
			p.wake(key, token)
		}
	}
}

// parseWake splits a wake-up "<len(token)>:<token><key>" (see
// notifyHead in New).
func parseWake(payload string) (key, token string, ok bool) {
	n, rest, ok := strings.Cut(payload, ":")
	if !ok {
		return "", "", false
	}
	l, err := strconv.Atoi(n)
	if err != nil || l < 0 || l > len(rest) {
		return "", "", false
	}
	return rest[l:], rest[:l], true
}

func (p *Provider) addWaiter(key, token string, ch chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.waiters[key]
	if m == nil {
		m = make(map[chan struct{}]string)
		p.waiters[key] = m
	}
	m[ch] = token
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

// wake wakes the waiters of key with token: the head of its queue.
func (p *Provider) wake(key, token string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for ch, t := range p.waiters[key] {
		if t == token {
			signal(ch)
		}
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
