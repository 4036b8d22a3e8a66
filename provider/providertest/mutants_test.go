package providertest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/provider/providertest"
)

// A mutant is the reference provider with one deliberate bug. Every subtest
// of the suite must catch at least one of them, which shows the subtest can
// fail at all.
//
// The mutants run in a child process (this test binary, restarted with
// mutantEnv set) because a failing subtest cannot be observed, only
// suffered, through *testing.T.
type mutant struct {
	provider.Provider // the reference provider

	tryAcquire   func(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error)
	acquire      func(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error)
	release      func(ctx context.Context, key, token string) error
	extend       func(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error)
	state        func(ctx context.Context, key string) (provider.State, error)
	forceRelease func(ctx context.Context, key string) (bool, error)
	close        func() error
	releaseAt    func(ctx context.Context, key, token string) (time.Time, error)
}

func (m *mutant) TryAcquire(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	if m.tryAcquire != nil {
		return m.tryAcquire(ctx, key, token, ttl)
	}
	return m.Provider.TryAcquire(ctx, key, token, ttl)
}

func (m *mutant) Acquire(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	if m.acquire != nil {
		return m.acquire(ctx, key, token, ttl)
	}
	return m.Provider.Acquire(ctx, key, token, ttl)
}

func (m *mutant) Release(ctx context.Context, key, token string) error {
	if m.release != nil {
		return m.release(ctx, key, token)
	}
	return m.Provider.Release(ctx, key, token)
}

func (m *mutant) Extend(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	if m.extend != nil {
		return m.extend(ctx, key, token, ttl)
	}
	return m.Provider.Extend(ctx, key, token, ttl)
}

func (m *mutant) State(ctx context.Context, key string) (provider.State, error) {
	if m.state != nil {
		return m.state(ctx, key)
	}
	return m.Provider.State(ctx, key)
}

func (m *mutant) ForceRelease(ctx context.Context, key string) (bool, error) {
	if m.forceRelease != nil {
		return m.forceRelease(ctx, key)
	}
	return m.Provider.ForceRelease(ctx, key)
}

func (m *mutant) Close() error {
	if m.close != nil {
		return m.close()
	}
	return m.Provider.Close()
}

// ReleaseAt makes every mutant a provider.LocalClock, as the reference is.
func (m *mutant) ReleaseAt(ctx context.Context, key, token string) (time.Time, error) {
	if m.releaseAt != nil {
		return m.releaseAt(ctx, key, token)
	}
	return m.Provider.(provider.LocalClock).ReleaseAt(ctx, key, token)
}

// mutants maps a mutant's name to the subtest that must catch it and to a
// constructor.
var mutants = map[string]struct {
	subtest string
	mutate  func(m *mutant, p provider.Provider)
}{
	// ReleaseAt reports a reading an hour late: a caller comparing its
	// deadline with it would call a fresh hold lapsed.
	"ReleaseAtLate": {"LocalClock", func(m *mutant, p provider.Provider) {
		m.releaseAt = func(ctx context.Context, key, token string) (time.Time, error) {
			at, err := p.(provider.LocalClock).ReleaseAt(ctx, key, token)
			return at.Add(time.Hour), err
		}
	}},
	// Acquire steals a held key instead of waiting, and Release hides the
	// theft: only the occupancy check can notice.
	"AcquireSteals": {"MutualExclusion", func(m *mutant, p provider.Provider) {
		m.acquire = func(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
			if g, err := p.TryAcquire(ctx, key, token, ttl); err == nil {
				return g, nil
			}
			if _, err := p.ForceRelease(ctx, key); err != nil {
				return provider.Grant{}, err
			}
			return p.Acquire(ctx, key, token, ttl)
		}
		m.release = func(ctx context.Context, key, token string) error {
			if err := p.Release(ctx, key, token); !errors.Is(err, provider.ErrNotHeld) {
				return err
			}
			return nil
		}
	}},
	// The holder's token may take its key again.
	"Reentrant": {"TryAcquireHeld", func(m *mutant, p provider.Provider) {
		m.tryAcquire = func(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
			if st, err := p.State(ctx, key); err == nil && st.Held && st.Token == token {
				return provider.Grant{Fence: st.Fence, Expires: time.Now().Add(st.TTL)}, nil
			}
			return p.TryAcquire(ctx, key, token, ttl)
		}
	}},
	// Release ignores the token.
	"ReleaseAnyToken": {"ReleaseOwnerChecked", func(m *mutant, p provider.Provider) {
		m.release = func(ctx context.Context, key, token string) error {
			if err := cmpOr(provider.CheckKey(key), provider.CheckToken(token)); err != nil {
				return err
			}
			held, err := p.ForceRelease(ctx, key)
			if err == nil && !held {
				err = provider.ErrNotHeld
			}
			return err
		}
	}},
	// Extend checks the holder but does not change the TTL.
	"ExtendNoop": {"Extend", func(m *mutant, p provider.Provider) {
		m.extend = func(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
			st, err := p.State(ctx, key)
			if err != nil {
				return provider.Grant{}, err
			}
			if !st.Held || st.Token != token {
				return provider.Grant{}, provider.ErrNotHeld
			}
			return provider.Grant{Fence: st.Fence, Expires: time.Now().Add(ttl)}, nil
		}
	}},
	// Holds last a hundred times longer than asked.
	"TTLTimes100": {"TTLExpiry", func(m *mutant, p provider.Provider) {
		m.tryAcquire = func(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
			return p.TryAcquire(ctx, key, token, 100*ttl)
		}
	}},
	// Grant.Expires is 2 ms later than the store's expiry: TTLExpiry's
	// woken waiter notices only sometimes (it failed 2 runs in 3 here).
	"ExpiresSlightlyLate": {"ExpiresNotAfterStore", func(m *mutant, p provider.Provider) {
		late := func(g provider.Grant, err error) (provider.Grant, error) {
			if err == nil {
				g.Expires = g.Expires.Add(2 * time.Millisecond)
			}
			return g, err
		}
		m.tryAcquire = func(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
			return late(p.TryAcquire(ctx, key, token, ttl))
		}
		m.acquire = func(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
			return late(p.Acquire(ctx, key, token, ttl))
		}
		m.extend = func(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
			return late(p.Extend(ctx, key, token, ttl))
		}
	}},
	// The fence counter wraps around.
	"FenceWraps": {"FencesIncrease", func(m *mutant, p provider.Provider) {
		wrap := func(g provider.Grant, err error) (provider.Grant, error) {
			if err == nil {
				g.Fence = (g.Fence-1)%5 + 1
			}
			return g, err
		}
		m.tryAcquire = func(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
			return wrap(p.TryAcquire(ctx, key, token, ttl))
		}
		m.acquire = func(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
			return wrap(p.Acquire(ctx, key, token, ttl))
		}
		m.state = func(ctx context.Context, key string) (provider.State, error) {
			st, err := p.State(ctx, key)
			if st.Held {
				st.Fence = (st.Fence-1)%5 + 1
			}
			return st, err
		}
	}},
	// ForceRelease frees the key but always reports it was free.
	"ForceReportsFalse": {"ForceRelease", func(m *mutant, p provider.Provider) {
		m.forceRelease = func(ctx context.Context, key string) (bool, error) {
			_, err := p.ForceRelease(ctx, key)
			return false, err
		}
	}},
	// State reports no TTL.
	"StateNoTTL": {"State", func(m *mutant, p provider.Provider) {
		m.state = func(ctx context.Context, key string) (provider.State, error) {
			st, err := p.State(ctx, key)
			st.TTL = 0
			return st, err
		}
	}},
	// Grant.Expires is not conservative.
	"ExpiresLate": {"GrantExpires", func(m *mutant, p provider.Provider) {
		m.tryAcquire = func(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
			g, err := p.TryAcquire(ctx, key, token, ttl)
			g.Expires = g.Expires.Add(ttl)
			return g, err
		}
	}},
	// Acquire polls every 7 s instead of being woken by the release.
	"SlowPolling": {"WaiterWokenOnRelease", func(m *mutant, p provider.Provider) {
		m.acquire = func(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
			for {
				g, err := p.TryAcquire(ctx, key, token, ttl)
				if !errors.Is(err, provider.ErrNotAcquired) {
					return g, err
				}
				timer := time.NewTimer(7 * time.Second)
				select {
				case <-ctx.Done():
					timer.Stop()
					return provider.Grant{}, provider.CtxError(ctx)
				case <-timer.C:
				}
			}
		}
	}},
	// A wait ended by its context does not report ctx.Err().
	"CtxErrorHidden": {"WaitCancelled", func(m *mutant, p provider.Provider) {
		m.acquire = func(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
			g, err := p.Acquire(ctx, key, token, ttl)
			if ctx.Err() != nil && err != nil {
				err = provider.ErrNotAcquired
			}
			return g, err
		}
	}},
	// TryAcquire ignores a context that ended before the call, and grants
	// (as memprovider did before the contract said otherwise).
	"TryAcquireIgnoresEndedCtx": {"WaitCancelled", func(m *mutant, p provider.Provider) {
		m.tryAcquire = func(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
			return p.TryAcquire(context.WithoutCancel(ctx), key, token, ttl)
		}
	}},
	// Bad input matches ErrInvalid but carries no *ArgError.
	"NoArgError": {"BadInput", func(m *mutant, p provider.Provider) {
		m.state = func(ctx context.Context, key string) (provider.State, error) {
			st, err := p.State(ctx, key)
			if errors.Is(err, provider.ErrInvalid) {
				err = fmt.Errorf("%w: %v", provider.ErrInvalid, err.Error())
			}
			return st, err
		}
	}},
	// Close does nothing.
	"CloseNoop": {"Closed", func(m *mutant, p provider.Provider) {
		m.close = func() error { return nil }
	}},
	// Every key is the same key.
	"OneKey": {"KeysIndependent", func(m *mutant, p provider.Provider) {
		one := func(key string) string {
			if key == "" {
				return ""
			}
			return "one"
		}
		m.tryAcquire = func(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
			return p.TryAcquire(ctx, one(key), token, ttl)
		}
		m.acquire = func(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
			return p.Acquire(ctx, one(key), token, ttl)
		}
		m.release = func(ctx context.Context, key, token string) error {
			return p.Release(ctx, one(key), token)
		}
		m.state = func(ctx context.Context, key string) (provider.State, error) {
			return p.State(ctx, one(key))
		}
	}},
}

func cmpOr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

const mutantEnv = "PROVIDERTEST_MUTANT"

// TestMutant runs the suite against the mutant named by $PROVIDERTEST_MUTANT.
// It is a child process of TestSuiteCatchesMutants and skips otherwise.
func TestMutant(t *testing.T) {
	name := os.Getenv(mutantEnv)
	if name == "" {
		t.Skip("run by TestSuiteCatchesMutants")
	}
	mu, ok := mutants[name]
	if !ok {
		t.Fatalf("unknown mutant %q", name)
	}
	providertest.Run(t, func(t *testing.T) provider.Provider {
		ref := newRefProvider()
		m := &mutant{Provider: ref}
		mu.mutate(m, ref)
		// The suite closes m; make sure the reference is closed too, so no
		// waiter goroutine outlives the test whatever the mutant does.
		t.Cleanup(func() { ref.Close() })
		return m
	})
}

// TestSuiteCatchesMutants checks that every subtest of the suite can fail:
// for each mutant, the subtest aimed at it must report a failure.
func TestSuiteCatchesMutants(t *testing.T) {
	if os.Getenv(mutantEnv) != "" {
		t.Skip("inside a mutant run")
	}
	if testing.Short() {
		t.Skip("starts a child test process per mutant; skipped with -short")
	}
	covered := map[string]bool{}
	for name, mu := range mutants {
		covered[mu.subtest] = true
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0],
				"-test.run=^TestMutant$/^"+mu.subtest+"$",
				"-test.v", "-test.count=1", "-test.timeout=5m")
			cmd.Env = append(os.Environ(), mutantEnv+"="+name)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("mutant %s: child test run: err = %v, want a failing exit\n%s", name, err, out)
			}
			if want := "--- FAIL: TestMutant/" + mu.subtest + " "; !strings.Contains(string(out), want) {
				t.Fatalf("mutant %s: subtest %s did not fail:\n%s", name, mu.subtest, out)
			}
			t.Logf("mutant %s caught by %s", name, mu.subtest)
		})
	}
	for _, sub := range []string{
		"MutualExclusion", "TryAcquireHeld", "ReleaseOwnerChecked", "Extend",
		"TTLExpiry", "ExpiresNotAfterStore", "FencesIncrease", "ForceRelease", "State", "GrantExpires",
		"WaiterWokenOnRelease", "WaitCancelled", "BadInput", "Closed",
		"KeysIndependent", "LocalClock",
	} {
		if !covered[sub] {
			t.Errorf("no mutant shows that subtest %s can fail", sub)
		}
	}
}
