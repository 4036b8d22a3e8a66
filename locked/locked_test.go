package locked_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/persistent"
	"github.com/lockproof/lockproof/repository"
)

// account is the test entity.
type account struct {
	Num     string
	Balance int
}

func (*account) Kind() string { return "account" }
func (a *account) ID() string { return a.Num }

// accountKey is the lock key of the account with the given number.
func accountKey(num string) string { return "account:" + num }

// finderFunc adapts a function to locked.Finder.
type finderFunc func(ctx context.Context, id string) (*account, error)

func (f finderFunc) Find(ctx context.Context, id string) (*account, error) { return f(ctx, id) }

// newAccounts returns a repository holding an account for each number, with
// balance 10·(index+1).
func newAccounts(t *testing.T, nums ...string) *repository.Memory[*account] {
	t.Helper()
	repo := repository.NewMemory[*account]()
	for i, num := range nums {
		require.NoError(t, repo.Insert(context.Background(), &account{Num: num, Balance: 10 * (i + 1)}))
	}
	return repo
}

// closeAllLocked closes every proof when t ends.
func closeAllLocked(t *testing.T, ls []*locked.Locked[*account]) {
	t.Helper()
	t.Cleanup(func() {
		for _, l := range ls {
			_ = l.Close()
		}
	})
}

func TestLockedAcquire(t *testing.T) {
	methods := []struct {
		name    string
		acquire func(context.Context, *locked.Service, *account, ...locked.CallOption) (*locked.Locked[*account], error)
	}{
		{"Acquire", locked.Acquire[*account]},
		{"TryAcquire", locked.TryAcquire[*account]},
	}
	for _, m := range methods {
		t.Run(m.name, func(t *testing.T) {
			p := newProvider(t)
			s := newService(t, p, nil)
			other := newService(t, p, nil)
			e := &account{Num: uniqueKey(t, "1"), Balance: 5}

			l, err := m.acquire(t.Context(), s, e)
			require.NoError(t, err)
			t.Cleanup(func() { _ = l.Close() })
			assert.Same(t, e, l.Entity())
			assert.Equal(t, accountKey(e.Num), l.Key())
			assert.Equal(t, l.Key(), l.Lease().Key())
			assert.NotZero(t, l.Fence())
			assert.Equal(t, l.Lease().Fence(), l.Fence())
			assert.Equal(t, l.Lease().ExpiresAt(), l.ExpiresAt())
			require.NoError(t, l.Context().Err())
			require.NoError(t, l.Check(t.Context()))
			assert.True(t, p.IsLocked(accountKey(e.Num)))

			_, err = locked.TryAcquire(t.Context(), other, &account{Num: e.Num})
			require.ErrorIs(t, err, locked.ErrNotAcquired, "the same identity is the same lock")
			_, err = locked.Acquire(t.Context(), other, &account{Num: e.Num}, locked.WithTimeout(20*time.Millisecond))
			require.ErrorIs(t, err, locked.ErrNotAcquired)
			require.ErrorIs(t, err, context.DeadlineExceeded)

			require.NoError(t, l.Close())
			require.NoError(t, l.Close())
			requireFree(t, s, accountKey(e.Num))
			waitDone(t, l.Context(), "closed proof")
			require.ErrorIs(t, l.Check(t.Context()), locked.ErrNotHeld)
		})
	}
}

func TestLockedAcquireInvalidEntity(t *testing.T) {
	methods := []struct {
		name    string
		acquire func(context.Context, *locked.Service, *account) error
	}{
		{"Acquire", func(ctx context.Context, s *locked.Service, e *account) error {
			_, err := locked.Acquire(ctx, s, e)
			return err
		}},
		{"TryAcquire", func(ctx context.Context, s *locked.Service, e *account) error {
			_, err := locked.TryAcquire(ctx, s, e)
			return err
		}},
		{"AcquireAll", func(ctx context.Context, s *locked.Service, e *account) error {
			_, err := locked.AcquireAll(ctx, s, []*account{{Num: "fine"}, e})
			return err
		}},
	}
	entities := []struct {
		name string
		e    *account
	}{
		{"typed nil pointer", nil},
		{"empty ID", &account{}},
	}
	for _, m := range methods {
		for _, tt := range entities {
			t.Run(m.name+"/"+tt.name, func(t *testing.T) {
				p := newProvider(t)
				s := newService(t, p, nil)
				var err error
				require.NotPanics(t, func() { err = m.acquire(t.Context(), s, tt.e) })
				require.ErrorIs(t, err, locked.ErrInvalid)
				require.ErrorIs(t, err, persistent.ErrInvalid)
				requireOpError(t, err, "acquire", "")
				assert.Equal(t, 0, p.Len(), "nothing may be locked")
				assert.Equal(t, 0, s.Stats().Open)
			})
		}
	}
}

func TestLockedAcquireNilInterface(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	var err error
	require.NotPanics(t, func() { _, err = locked.Acquire[persistent.Persistent](t.Context(), s, nil) })
	require.ErrorIs(t, err, locked.ErrInvalid)
	assert.Equal(t, 0, p.Len())
}

func TestLockedAcquireBadOption(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	_, err := locked.Acquire(t.Context(), s, &account{Num: uniqueKey(t, "1")}, locked.WithTTL(-1))
	requireArgError(t, err)
	_, err = locked.AcquireAll(t.Context(), s, []*account{{Num: uniqueKey(t, "1")}}, locked.WithTimeout(0))
	requireArgError(t, err)
	assert.Equal(t, 0, p.Len())
}

func TestLoad(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	num := uniqueKey(t, "1")
	repo := newAccounts(t, num)

	l, err := locked.Load(t.Context(), s, repo, num)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	assert.Equal(t, &account{Num: num, Balance: 10}, l.Entity())
	assert.Equal(t, accountKey(num), l.Key())
	assert.True(t, p.IsLocked(accountKey(num)), "Load returns with the key held")
	require.NoError(t, l.Check(t.Context()))

	l.Entity().Balance += 5
	require.NoError(t, repo.Save(t.Context(), l))
	require.NoError(t, l.Close())
	requireFree(t, s, accountKey(num))

	got, err := repo.Find(t.Context(), num)
	require.NoError(t, err)
	assert.Equal(t, 15, got.Balance)
}

func TestLoadLocksBeforeReading(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	num := uniqueKey(t, "1")
	var heldDuringFind []bool
	finder := finderFunc(func(_ context.Context, id string) (*account, error) {
		heldDuringFind = append(heldDuringFind, p.IsLocked(accountKey(id)))
		return &account{Num: id}, nil
	})

	l, err := locked.Load(t.Context(), s, finder, num)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	assert.Equal(t, []bool{true}, heldDuringFind, "Find must run under the lock")
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name   string
		id     string // "" is passed as is; otherwise made unique
		finder func(t *testing.T, calls *int) locked.Finder[*account]
		want   []error
	}{
		{
			name: "finder error",
			id:   "1",
			finder: func(t *testing.T, calls *int) locked.Finder[*account] {
				return finderFunc(func(context.Context, string) (*account, error) {
					*calls++
					return nil, errFn
				})
			},
			want: []error{errFn},
		},
		{
			name: "not in the repository",
			id:   "1",
			finder: func(t *testing.T, calls *int) locked.Finder[*account] {
				return newAccounts(t)
			},
			want: []error{repository.ErrNotFound},
		},
		{
			name: "finder returns another entity",
			id:   "1",
			finder: func(t *testing.T, calls *int) locked.Finder[*account] {
				return finderFunc(func(_ context.Context, id string) (*account, error) {
					*calls++
					return &account{Num: id + "-other"}, nil
				})
			},
			want: []error{locked.ErrInvalid},
		},
		{
			name: "finder returns nil",
			id:   "1",
			finder: func(t *testing.T, calls *int) locked.Finder[*account] {
				return finderFunc(func(context.Context, string) (*account, error) {
					*calls++
					return nil, nil
				})
			},
			want: []error{persistent.ErrInvalid},
		},
		{
			name: "empty ID",
			id:   "",
			finder: func(t *testing.T, calls *int) locked.Finder[*account] {
				return finderFunc(func(context.Context, string) (*account, error) {
					t.Error("Find called for an empty ID")
					return nil, nil
				})
			},
			want: []error{locked.ErrInvalid, persistent.ErrInvalid},
		},
		{
			name: "nil finder",
			id:   "1",
			finder: func(t *testing.T, calls *int) locked.Finder[*account] {
				return nil
			},
			want: []error{locked.ErrInvalid},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t)
			s := newService(t, p, nil)
			id := tt.id
			if id != "" {
				id = uniqueKey(t, id)
			}
			var calls int
			finder := tt.finder(t, &calls)
			l, err := locked.Load(t.Context(), s, finder, id)
			require.Nil(t, l)
			for _, want := range tt.want {
				require.ErrorIs(t, err, want)
			}
			assert.LessOrEqual(t, calls, 1)
			assert.Equal(t, 0, p.Len(), "the lock must be released")
			assert.Equal(t, 0, s.Stats().Open)
		})
	}
}

func TestLoadKeyHeld(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	other := newService(t, p, nil)
	num := uniqueKey(t, "1")
	holder := mustAcquire(t, other, accountKey(num))
	finder := finderFunc(func(context.Context, string) (*account, error) {
		t.Error("Find called without the lock")
		return nil, errFn
	})

	_, err := locked.Load(t.Context(), s, finder, num, locked.WithTimeout(50*time.Millisecond))
	require.ErrorIs(t, err, locked.ErrNotAcquired)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NoError(t, holder.Check(t.Context()))
	assert.Equal(t, 0, s.Stats().Open)
}

// TestLoadTypedNilFinder: a typed nil Finder is bad input like a nil one
// (invariant 7): a clear error, no panic, no lock left behind.
func TestLoadTypedNilFinder(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	var repo *repository.Memory[*account]
	var err error
	require.NotPanics(t, func() { _, err = locked.Load(t.Context(), s, repo, uniqueKey(t, "1")) })
	require.ErrorIs(t, err, locked.ErrInvalid)
	assert.Equal(t, 0, p.Len())
}

func TestLoadAll(t *testing.T) {
	var log eventLog
	p := newProvider(t)
	s := newService(t, p, &locked.Options{OnEvent: log.record})
	ids := []string{uniqueKey(t, "c"), uniqueKey(t, "a"), uniqueKey(t, "b")}
	repo := newAccounts(t, ids...)

	ls, err := locked.LoadAll(t.Context(), s, repo, ids)
	require.NoError(t, err)
	closeAllLocked(t, ls)
	require.Len(t, ls, len(ids))
	for i, l := range ls {
		assert.Equal(t, ids[i], l.Entity().Num, "results in input order")
		assert.Equal(t, 10*(i+1), l.Entity().Balance)
		require.NoError(t, l.Check(t.Context()))
		assert.True(t, p.IsLocked(accountKey(ids[i])))
	}
	assertAcquiredSorted(t, &log, ids)
}

func TestAcquireAll(t *testing.T) {
	var log eventLog
	p := newProvider(t)
	s := newService(t, p, &locked.Options{OnEvent: log.record})
	es := []*account{{Num: uniqueKey(t, "b")}, {Num: uniqueKey(t, "c")}, {Num: uniqueKey(t, "a")}}

	ls, err := locked.AcquireAll(t.Context(), s, es)
	require.NoError(t, err)
	closeAllLocked(t, ls)
	require.Len(t, ls, len(es))
	for i, l := range ls {
		assert.Same(t, es[i], l.Entity(), "results in input order")
		require.NoError(t, l.Check(t.Context()))
	}
	assertAcquiredSorted(t, &log, []string{es[0].Num, es[1].Num, es[2].Num})

	for _, l := range ls {
		require.NoError(t, l.Close())
	}
	assert.Equal(t, 0, p.Len())

	empty, err := locked.AcquireAll(t.Context(), s, []*account{})
	require.NoError(t, err)
	assert.Empty(t, empty)
}

// assertAcquiredSorted asserts that the accounts with the given numbers
// were acquired in sorted key order.
func assertAcquiredSorted(t *testing.T, log *eventLog, nums []string) {
	t.Helper()
	var got, want []string
	for _, e := range log.ofType(locked.Acquired) {
		got = append(got, e.Key)
	}
	for _, num := range nums {
		want = append(want, accountKey(num))
	}
	slices.Sort(want)
	assert.Equal(t, want, got, "keys are taken in sorted order")
}

func TestAcquireAllDuplicates(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	a, b := uniqueKey(t, "a"), uniqueKey(t, "b")
	repo := newAccounts(t, a, b)

	_, err := locked.AcquireAll(t.Context(), s, []*account{{Num: a}, {Num: b}, {Num: a}})
	ae := requireArgError(t, err)
	assert.Equal(t, "keys", ae.Arg)
	requireOpError(t, err, "acquire", accountKey(a))

	_, err = locked.LoadAll(t.Context(), s, repo, []string{b, a, b})
	requireArgError(t, err)
	assert.Equal(t, 0, p.Len(), "nothing may be locked")
}

func TestAcquireAllAllOrNothing(t *testing.T) {
	tests := []struct {
		name string
		held int // index, in sorted order, of the key someone else holds
	}{
		{"first key held", 0},
		{"middle key held", 1},
		{"last key held", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t)
			s := newService(t, p, nil)
			other := newService(t, p, nil)
			nums := []string{uniqueKey(t, "a"), uniqueKey(t, "b"), uniqueKey(t, "c")}
			holder := mustAcquire(t, other, accountKey(nums[tt.held]))
			repo := newAccounts(t, nums...)
			reversed := slices.Clone(nums)
			slices.Reverse(reversed)

			_, err := locked.AcquireAll(t.Context(), s,
				[]*account{{Num: reversed[0]}, {Num: reversed[1]}, {Num: reversed[2]}},
				locked.WithTimeout(50*time.Millisecond))
			require.ErrorIs(t, err, locked.ErrNotAcquired)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			requireNoneHeldBut(t, p, s, nums, tt.held)

			_, err = locked.LoadAll(t.Context(), s, repo, reversed, locked.WithTimeout(50*time.Millisecond))
			require.ErrorIs(t, err, locked.ErrNotAcquired)
			requireNoneHeldBut(t, p, s, nums, tt.held)

			require.NoError(t, holder.Check(t.Context()))
		})
	}
}

func requireNoneHeldBut(t *testing.T, p *memprovider.Provider, s *locked.Service, nums []string, held int) {
	t.Helper()
	for i, num := range nums {
		assert.Equal(t, i == held, p.IsLocked(accountKey(num)), "account %s", num)
	}
	assert.Equal(t, 0, s.Stats().Open)
}

func TestLoadAllFindFails(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	nums := []string{uniqueKey(t, "a"), uniqueKey(t, "b"), uniqueKey(t, "c")}
	finder := finderFunc(func(_ context.Context, id string) (*account, error) {
		if id == nums[1] {
			return nil, errFn
		}
		return &account{Num: id}, nil
	})
	_, err := locked.LoadAll(t.Context(), s, finder, nums)
	require.ErrorIs(t, err, errFn)
	assert.Equal(t, 0, p.Len(), "every lock must be released")
	assert.Equal(t, 0, s.Stats().Open)
}

// TestAcquireAllEmptyRejectsBadOption: a bad option is an error even when
// there is nothing to lock (invariant 7: no silent success).
func TestAcquireAllEmptyRejectsBadOption(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	_, err := locked.AcquireAll(t.Context(), s, []*account(nil), locked.WithTTL(-1))
	requireArgError(t, err)
	_, err = locked.LoadAll(t.Context(), s, newAccounts(t), nil, locked.WithTimeout(-1))
	requireArgError(t, err)
}

func TestAcquireAllNoDeadlock(t *testing.T) {
	const iterations = 200
	p := newProvider(t)
	s1 := newService(t, p, nil)
	s2 := newService(t, p, nil)
	a, b := uniqueKey(t, "a"), uniqueKey(t, "b")
	repo := newAccounts(t, a, b)

	orders := []struct {
		s    *locked.Service
		lock func(*locked.Service) ([]*locked.Locked[*account], error)
	}{
		{s1, func(s *locked.Service) ([]*locked.Locked[*account], error) {
			return locked.AcquireAll(context.Background(), s, []*account{{Num: a}, {Num: b}}, locked.WithTimeout(liveness))
		}},
		{s2, func(s *locked.Service) ([]*locked.Locked[*account], error) {
			return locked.AcquireAll(context.Background(), s, []*account{{Num: b}, {Num: a}}, locked.WithTimeout(liveness))
		}},
		{s1, func(s *locked.Service) ([]*locked.Locked[*account], error) {
			return locked.LoadAll(context.Background(), s, repo, []string{b, a}, locked.WithTimeout(liveness))
		}},
	}
	var wg sync.WaitGroup
	for _, o := range orders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range iterations {
				ls, err := o.lock(o.s)
				if !assert.NoError(t, err) {
					return
				}
				for _, l := range ls {
					if !assert.NoError(t, l.Close()) {
						return
					}
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	receive(t, done, 3*liveness, "workers locking overlapping sets")
	assert.Equal(t, 0, p.Len())
}

func TestLockedCheckIdentityChange(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	num := uniqueKey(t, "1")
	repo := newAccounts(t, num)
	l, err := locked.Load(t.Context(), s, repo, num)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })

	l.Entity().Num = num + "-changed"
	err = l.Check(t.Context())
	require.ErrorIs(t, err, locked.ErrNotHeld)
	requireOpError(t, err, "check", accountKey(num))
	require.ErrorIs(t, repo.Save(t.Context(), l), locked.ErrNotHeld, "no write through a changed identity")

	l.Entity().Num = ""
	require.ErrorIs(t, l.Check(t.Context()), locked.ErrNotHeld)

	l.Entity().Num = num
	require.NoError(t, l.Check(t.Context()), "the original identity holds again")
}

func TestLockedCheckAfterLoss(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	num := uniqueKey(t, "1")
	repo := newAccounts(t, num)
	l, err := locked.Load(t.Context(), s, repo, num, locked.WithTTL(50*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })

	waitDone(t, l.Context(), "lapsing proof")
	require.ErrorIs(t, context.Cause(l.Context()), locked.ErrNotHeld)
	require.ErrorIs(t, l.Check(t.Context()), locked.ErrNotHeld)
	l.Entity().Balance = 99
	require.ErrorIs(t, repo.Save(t.Context(), l), locked.ErrNotHeld)
	require.ErrorIs(t, l.Close(), locked.ErrNotHeld, "the first Close reports the lapse")
	require.NoError(t, l.Close())

	got, err := repo.Find(t.Context(), num)
	require.NoError(t, err)
	assert.Equal(t, 10, got.Balance, "nothing written")
}

func TestZeroAndNilLocked(t *testing.T) {
	tests := []struct {
		name string
		l    *locked.Locked[*account]
	}{
		{"zero", &locked.Locked[*account]{}},
		{"nil", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := tt.l
			repo := newAccounts(t, "1")
			require.NotPanics(t, func() {
				assert.Nil(t, l.Entity())
				assert.Nil(t, l.Lease())
				assert.Zero(t, l.Fence())
				assert.Empty(t, l.Key())
				assert.Zero(t, l.ExpiresAt())
				require.Error(t, l.Context().Err(), "context must be done")
				require.ErrorIs(t, context.Cause(l.Context()), locked.ErrNotHeld)
				require.ErrorIs(t, l.Check(t.Context()), locked.ErrNotHeld)
				require.NoError(t, l.Close())
				require.NoError(t, l.Close())
				require.ErrorIs(t, repo.Save(t.Context(), l), locked.ErrNotHeld)
				require.ErrorIs(t, repo.Delete(t.Context(), l), locked.ErrNotHeld)
			})
			assert.Equal(t, 1, repo.Len(), "nothing deleted")
		})
	}
}

// TestCheckLocal: CheckLocal answers from what this process knows, without
// the store; Check also asks the store. A force-release that the holder has
// not noticed yet tells them apart, until Lease.Check notices it and ends
// the lease here too.
func TestCheckLocal(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	ctx := t.Context()
	e := &account{Num: uniqueKey(t, "1")}
	l, err := locked.Acquire(ctx, s, e)
	require.NoError(t, err)
	require.NoError(t, l.CheckLocal())
	require.NoError(t, l.Check(ctx))

	num := e.Num
	e.Num = "other"
	assert.ErrorIs(t, l.CheckLocal(), locked.ErrNotHeld, "identity changed")
	e.Num = num
	require.NoError(t, l.CheckLocal())

	_, err = s.ForceRelease(ctx, l.Key())
	require.NoError(t, err)
	assert.NoError(t, l.CheckLocal(), "nothing local has changed")
	assert.ErrorIs(t, l.Check(ctx), locked.ErrNotHeld, "the store no longer has it")
	assert.NoError(t, l.CheckLocal(), "Locked.Check reports it and leaves the lease to its holder")
	assert.ErrorIs(t, l.Lease().Check(ctx), locked.ErrNotHeld)
	assert.ErrorIs(t, l.CheckLocal(), locked.ErrNotHeld, "Lease.Check ended the lease here")
	assert.ErrorIs(t, context.Cause(l.Context()), locked.ErrNotHeld)
	require.ErrorIs(t, l.Close(), locked.ErrNotHeld)
	assert.ErrorIs(t, l.CheckLocal(), locked.ErrNotHeld, "closed")

	var zero locked.Locked[*account]
	assert.ErrorIs(t, zero.CheckLocal(), locked.ErrNotHeld)
	assert.ErrorIs(t, (*locked.Locked[*account])(nil).CheckLocal(), locked.ErrNotHeld)
}
