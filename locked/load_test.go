package locked_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/provider"
)

// readingProvider is a memprovider that runs the reads it made (fakeRead)
// with its grants, as redisprovider runs its HashReads: the seam of
// locked.Loader without Redis.
type readingProvider struct {
	*memprovider.Provider
	balances map[string]int // the "store" the reads read, by lock key
}

func (p *readingProvider) TryAcquire(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	g, err := p.Provider.TryAcquire(ctx, key, token, ttl)
	p.read(ctx, key, token, g, err)
	return g, err
}

func (p *readingProvider) Acquire(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	g, err := p.Provider.Acquire(ctx, key, token, ttl)
	p.read(ctx, key, token, g, err)
	return g, err
}

func (p *readingProvider) read(ctx context.Context, key, token string, g provider.Grant, err error) {
	if rd, ok := provider.ReadOf(ctx, key).(*fakeRead); ok && rd.p == p && err == nil {
		rd.token, rd.fence = token, g.Fence
		rd.balance, rd.found = p.balances[key]
	}
}

// fakeRead is a provider.Read of readingProvider.
type fakeRead struct {
	p       *readingProvider
	key     string
	token   string // set by the grant
	fence   uint64
	balance int
	found   bool
}

func (r *fakeRead) Key() string { return r.key }
func (r *fakeRead) Granted(token string, fence uint64) bool {
	return r.fence != 0 && r.token == token && r.fence == fence
}

// loader is a locked.Loader of accounts whose reads a readingProvider runs.
type loader struct {
	p       *readingProvider
	decline bool  // ReadFor says no
	loadErr error // Loaded fails with it
	finds   int   // Find calls
	loads   int   // Loaded calls
}

func (l *loader) Find(_ context.Context, id string) (*account, error) {
	l.finds++
	b, ok := l.p.balances[accountKey(id)]
	if !ok {
		return nil, errNoAccount
	}
	return &account{Num: id, Balance: b}, nil
}

var errNoAccount = errors.New("no such account")

func (l *loader) ReadFor(s *locked.Service, id string) (provider.Read, bool) {
	if l.decline {
		return nil, false
	}
	return &fakeRead{p: l.p, key: accountKey(id)}, true
}

func (l *loader) Loaded(id string, rd provider.Read) (*account, error) {
	l.loads++
	r := rd.(*fakeRead)
	switch {
	case l.loadErr != nil:
		return nil, l.loadErr
	case !r.found:
		return nil, errNoAccount
	}
	return &account{Num: id, Balance: r.balance}, nil
}

func newReading(t *testing.T, balances map[string]int) (*readingProvider, *locked.Service) {
	t.Helper()
	p := &readingProvider{Provider: newProvider(t), balances: map[string]int{}}
	for id, b := range balances {
		p.balances[accountKey(id)] = b
	}
	return p, newService(t, p, nil)
}

// TestLoadReadsWithTheGrant: with a Loader whose reads the provider runs,
// Load and LoadAll take the entity from the read that the granting acquire
// carried (TryAcquire with WithMaxRetries(0), Acquire otherwise), never
// calling Find, and the proof is the Service's usual one.
func TestLoadReadsWithTheGrant(t *testing.T) {
	a, b := uniqueKey(t, "a"), uniqueKey(t, "b")
	p, s := newReading(t, map[string]int{a: 10, b: 20})
	for _, opts := range [][]locked.CallOption{nil, {locked.WithMaxRetries(0, 0)}, {locked.WithMaxRetries(2, 0)}} {
		ld := &loader{p: p}
		l, err := locked.Load(t.Context(), s, ld, a, opts...)
		require.NoError(t, err)
		assert.Equal(t, 10, l.Entity().Balance)
		assert.Equal(t, 1, ld.loads)
		assert.Zero(t, ld.finds, "Find called although the grant carried the read")
		require.NoError(t, l.Check(t.Context()))
		require.NoError(t, l.Close())
	}

	ld := &loader{p: p}
	ls, err := locked.LoadAll(t.Context(), s, ld, []string{b, a})
	require.NoError(t, err)
	closeAllLocked(t, ls)
	assert.Equal(t, []int{20, 10}, []int{ls[0].Entity().Balance, ls[1].Entity().Balance})
	assert.Equal(t, 2, ld.loads)
	assert.Zero(t, ld.finds)
}

// TestLoadFallsBackToFind: Load reads with Find when the provider does not
// run the Loader's reads, when the Loader declines, and when the hold was
// granted without the read (WithReentrant extends the caller's own hold).
func TestLoadFallsBackToFind(t *testing.T) {
	t.Run("ProviderIgnoresReads", func(t *testing.T) {
		a := uniqueKey(t, "a")
		p, _ := newReading(t, map[string]int{a: 10})
		s := newService(t, p.Provider, nil) // the plain memprovider: no reads
		ld := &loader{p: p}
		l, err := locked.Load(t.Context(), s, ld, a)
		require.NoError(t, err)
		defer l.Close()
		assert.Equal(t, 10, l.Entity().Balance)
		assert.Equal(t, []int{1, 0}, []int{ld.finds, ld.loads}, "finds, loads")
	})
	t.Run("LoaderDeclines", func(t *testing.T) {
		a := uniqueKey(t, "a")
		p, s := newReading(t, map[string]int{a: 10})
		ld := &loader{p: p, decline: true}
		l, err := locked.Load(t.Context(), s, ld, a)
		require.NoError(t, err)
		defer l.Close()
		assert.Equal(t, []int{1, 0}, []int{ld.finds, ld.loads}, "finds, loads")
	})
	t.Run("ReentrantExtend", func(t *testing.T) {
		a := uniqueKey(t, "a")
		p, s := newReading(t, map[string]int{a: 10})
		first, err := locked.Load(t.Context(), s, &loader{p: p}, a)
		require.NoError(t, err)
		defer first.Close()
		ld := &loader{p: p}
		//lockcheck:ignore re-entry by the same owner is what this case tests
		again, err := locked.Load(first.Context(), s, ld, a, locked.WithReentrant())
		require.NoError(t, err)
		defer again.Close()
		assert.Equal(t, first.Fence(), again.Fence(), "re-entry shares the hold")
		assert.Equal(t, []int{1, 0}, []int{ld.finds, ld.loads}, "finds, loads: an extend carries no read")
	})
}

// TestLoadKeepsLoadRules: through a Loader, a failed read releases the
// lock and returns the Loader's error; a missing record is the Loader's
// not-found; nesting is refused before anything is read.
func TestLoadKeepsLoadRules(t *testing.T) {
	a, missing := uniqueKey(t, "a"), uniqueKey(t, "missing")
	p, s := newReading(t, map[string]int{a: 10})

	boom := errors.New("decode failed")
	_, err := locked.Load(t.Context(), s, &loader{p: p, loadErr: boom}, a)
	require.ErrorIs(t, err, boom)
	assert.False(t, p.IsLocked(accountKey(a)), "a failed read left the lock held")

	_, err = locked.LoadAll(t.Context(), s, &loader{p: p}, []string{a, missing})
	require.ErrorIs(t, err, errNoAccount)
	assert.False(t, p.IsLocked(accountKey(a)), "LoadAll left a lock held after a missing record")
	assert.False(t, p.IsLocked(accountKey(missing)))

	l, err := locked.Load(t.Context(), s, &loader{p: p}, a)
	require.NoError(t, err)
	defer l.Close()
	ld := &loader{p: p}
	_, err = locked.Load(l.Context(), s, ld, a)
	require.ErrorIs(t, err, locked.ErrNested)
	assert.Equal(t, []int{0, 0}, []int{ld.finds, ld.loads}, "finds, loads of a refused nested Load")
}

// TestLoadReadOfOtherGrant: a read that a grant of another lease carried
// (another token) is not taken for this lease's: Load finds instead.
func TestLoadReadOfOtherGrant(t *testing.T) {
	a := uniqueKey(t, "a")
	p, s := newReading(t, map[string]int{a: 10})
	stale := &fakeRead{p: p, key: accountKey(a), token: "someone-else", fence: 1, balance: 99, found: true}
	ld := &staleLoader{loader: loader{p: p}, rd: stale}
	l, err := locked.Load(t.Context(), s, ld, a)
	require.NoError(t, err)
	defer l.Close()
	assert.Equal(t, 10, l.Entity().Balance, "the entity came from a read of another grant")
	assert.Equal(t, 1, ld.finds)
}

// staleLoader hands out one read that a provider of another type never
// runs, already filled in as if another grant had carried it.
type staleLoader struct {
	loader
	rd *fakeRead
}

func (l *staleLoader) ReadFor(*locked.Service, string) (provider.Read, bool) {
	cp := *l.rd
	cp.p = nil // not the provider's: it stays as it is
	return &cp, true
}
