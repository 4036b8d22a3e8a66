package persistent_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lockproof/lockproof/persistent"
)

type ptrEntity struct{ id string }

func (*ptrEntity) Kind() string { return "ptr" }
func (e *ptrEntity) ID() string { return e.id }

type valEntity struct{ id string }

func (valEntity) Kind() string { return "val" }
func (e valEntity) ID() string { return e.id }

// valOnPtr is used as a pointer type but has value receivers: Kind must
// still work without an entity.
type valOnPtr struct{ id string }

func (valOnPtr) Kind() string { return "vop" }
func (e valOnPtr) ID() string { return e.id }

func TestKey(t *testing.T) {
	for _, tc := range []struct {
		kind, id, want string
		bad            bool
	}{
		{kind: "account", id: "42", want: "account:42"},
		{kind: "account", id: "a:b", want: "account:a:b"}, // IDs may contain ':'
		{kind: "", id: "42", bad: true},
		{kind: "acc:ount", id: "42", bad: true},
		{kind: "account", id: "", bad: true},
	} {
		got, err := persistent.Key(tc.kind, tc.id)
		if tc.bad {
			assert.ErrorIs(t, err, persistent.ErrInvalid, "Key(%q, %q)", tc.kind, tc.id)
			assert.Empty(t, got)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, tc.want, got)
	}
}

func TestKeyOf(t *testing.T) {
	key, err := persistent.KeyOf(&ptrEntity{id: "1"})
	require.NoError(t, err)
	assert.Equal(t, "ptr:1", key)

	key, err = persistent.KeyOf(valEntity{id: "2"})
	require.NoError(t, err)
	assert.Equal(t, "val:2", key)

	var nilPtr *ptrEntity
	_, err = persistent.KeyOf(nilPtr) // must not call ID on nil
	assert.ErrorIs(t, err, persistent.ErrInvalid)

	var nilIface persistent.Persistent
	_, err = persistent.KeyOf(nilIface)
	assert.ErrorIs(t, err, persistent.ErrInvalid)

	_, err = persistent.KeyOf(&ptrEntity{})
	assert.True(t, errors.Is(err, persistent.ErrInvalid), "empty ID: %v", err)
}

func TestKindOf(t *testing.T) {
	assert.Equal(t, "ptr", persistent.KindOf[*ptrEntity]())
	assert.Equal(t, "val", persistent.KindOf[valEntity]())
	assert.Equal(t, "vop", persistent.KindOf[*valOnPtr]()) // would panic on a nil pointer
	assert.Equal(t, "", persistent.KindOf[persistent.Persistent]())

	key, err := persistent.KeyFor[*ptrEntity]("9")
	require.NoError(t, err)
	assert.Equal(t, "ptr:9", key)
	_, err = persistent.KeyFor[persistent.Persistent]("9")
	assert.ErrorIs(t, err, persistent.ErrInvalid)
}
