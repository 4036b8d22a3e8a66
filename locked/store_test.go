package locked_test

import (
	"strings"
	"testing"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
)

func TestStore(t *testing.T) {
	p, q := memprovider.New(), memprovider.New()
	t.Cleanup(func() { p.Close(); q.Close() })
	a1 := newService(t, p, &locked.Options{Namespace: "a"})
	a2 := newService(t, p, &locked.Options{Namespace: "a"})
	b := newService(t, p, &locked.Options{Namespace: "b"})
	none := newService(t, p, nil)
	other := newService(t, q, &locked.Options{Namespace: "a"})

	if a1.Store() != a2.Store() {
		t.Errorf("two Services over one provider and Namespace: Stores %v and %v differ", a1.Store(), a2.Store())
	}
	for name, s := range map[string]*locked.Service{"another Namespace": b, "no Namespace": none, "another provider": other} {
		if s.Store() == a1.Store() {
			t.Errorf("a Service with %s has the same Store %v", name, s.Store())
		}
	}
	l := mustAcquire(t, a1, uniqueKey(t, "k"))
	if l.Store() != a2.Store() {
		t.Errorf("lease Store %v, want its Service's %v", l.Store(), a2.Store())
	}
	var zero locked.Store
	if (*locked.Lease)(nil).Store() != zero || (&locked.Lease{}).Store() != zero || (*locked.Service)(nil).Store() != zero {
		t.Error("a nil or zero Lease, or a nil Service, has a non-zero Store")
	}
	if s := a1.Store().String(); !strings.Contains(s, "*memprovider.Provider") || !strings.Contains(s, `namespace "a"`) {
		t.Errorf("Store.String() = %q, want the provider type and the namespace", s)
	}
}

// uncomparableProvider is a provider whose dynamic type == would panic on.
type uncomparableProvider struct {
	*memprovider.Provider
	tags []string
}

func TestStoreUncomparableProvider(t *testing.T) {
	p := memprovider.New()
	t.Cleanup(func() { p.Close() })
	u := uncomparableProvider{Provider: p, tags: []string{"x"}}
	s1 := newService(t, u, nil)
	s2 := newService(t, u, nil)
	// Comparing must not panic; each such Service is its own Store.
	if s1.Store() == s2.Store() {
		t.Error("two Services over a provider of an uncomparable type share a Store; each should be its own")
	}
	if s1.Store() != s1.Store() {
		t.Error("a Service's Store differs from itself")
	}
}
