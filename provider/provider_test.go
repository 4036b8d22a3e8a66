package provider_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/lockproof/lockproof/provider"
)

func TestChecks(t *testing.T) {
	for _, tc := range []struct {
		err error
		arg string
	}{
		{provider.CheckKey(""), "key"},
		{provider.CheckToken(""), "token"},
		{provider.CheckTTL(0), "ttl"},
		{provider.CheckTTL(-time.Second), "ttl"},
	} {
		assert.ErrorIs(t, tc.err, provider.ErrInvalid)
		var ae *provider.ArgError
		if assert.ErrorAs(t, tc.err, &ae) {
			assert.Equal(t, tc.arg, ae.Arg)
			assert.Contains(t, ae.Error(), tc.arg)
		}
	}
	assert.NoError(t, provider.CheckKey("k"))
	assert.NoError(t, provider.CheckToken("t"))
	assert.NoError(t, provider.CheckTTL(time.Nanosecond))
}

func TestCtxError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := provider.CtxError(ctx)
	assert.ErrorIs(t, err, provider.ErrNotAcquired)
	assert.ErrorIs(t, err, context.Canceled)
	assert.False(t, errors.Is(err, context.DeadlineExceeded))
	assert.Equal(t, "lockproof: not acquired: context canceled", err.Error())

	ctx, cancel = context.WithTimeout(context.Background(), -1)
	defer cancel()
	err = provider.CtxError(ctx)
	assert.ErrorIs(t, err, provider.ErrNotAcquired)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestOutcomeClasses(t *testing.T) {
	cause := errors.New("read tcp: i/o timeout")

	unknown := provider.OutcomeUnknown(cause)
	assert.ErrorIs(t, unknown, provider.ErrOutcomeUnknown)
	assert.ErrorIs(t, unknown, provider.ErrUnavailable)
	assert.ErrorIs(t, unknown, cause)
	assert.Equal(t, "lockproof: outcome unknown: read tcp: i/o timeout", unknown.Error())

	unavailable := provider.Unavailable(cause)
	assert.ErrorIs(t, unavailable, provider.ErrUnavailable)
	assert.ErrorIs(t, unavailable, cause)
	assert.False(t, errors.Is(unavailable, provider.ErrOutcomeUnknown), "unavailable must not claim the request may have applied")

	assert.ErrorIs(t, provider.ErrOutcomeUnknown, provider.ErrUnavailable)
	assert.False(t, errors.Is(provider.ErrUnavailable, provider.ErrOutcomeUnknown))
}
