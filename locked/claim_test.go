package locked_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lockproof/lockproof/locked"
)

// claimer is a Finder and a Claimer that records the leases it was given.
type claimer struct {
	finds  int
	claims []*locked.Lease
	err    error
}

func (c *claimer) Find(ctx context.Context, id string) (*account, error) {
	c.finds++
	return &account{Num: id}, nil
}

func (c *claimer) Claim(ctx context.Context, id string, lease *locked.Lease) (*account, error) {
	c.claims = append(c.claims, lease)
	if c.err != nil {
		return nil, c.err
	}
	return &account{Num: id}, nil
}

// TestLoadClaims: Load and LoadAll read through Claim, with each entity's
// own new lease, when the Finder is a Claimer; a Claim error releases the
// locks and is returned.
func TestLoadClaims(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	c := &claimer{}
	a, b := uniqueKey(t, "a"), uniqueKey(t, "b")
	ls, err := locked.LoadAll(t.Context(), s, c, []string{b, a})
	require.NoError(t, err)
	defer closeAllLocked(t, ls)
	assert.Equal(t, 0, c.finds, "Find called although the Finder claims")
	require.Len(t, c.claims, 2)
	got := map[string]uint64{}
	for _, l := range c.claims {
		got[l.Key()] = l.Fence()
	}
	for _, l := range ls {
		assert.Equal(t, l.Fence(), got[l.Key()], "Claim of %s got another lease", l.Key())
	}

	boom := errors.New("claim refused")
	bad := &claimer{err: boom}
	x := uniqueKey(t, "x")
	_, err = locked.Load(t.Context(), s, bad, x)
	require.ErrorIs(t, err, boom)
	held, err := s.IsLocked(t.Context(), accountKey(x))
	require.NoError(t, err)
	assert.False(t, held, "a failed Claim left the lock held")
}
