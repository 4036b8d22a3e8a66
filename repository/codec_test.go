package repository_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/persistent"
	"github.com/lockproof/lockproof/repository"
)

// user keeps its state in unexported fields, as DDD entities do.
type user struct {
	id   string
	name string
}

func (*user) Kind() string { return "user" }
func (u *user) ID() string { return u.id }
func (u *user) MarshalBinary() ([]byte, error) {
	return []byte(u.id + "\x00" + u.name), nil
}
func (u *user) UnmarshalBinary(b []byte) error {
	id, name, ok := strings.Cut(string(b), "\x00")
	if !ok {
		return errors.New("bad user record")
	}
	u.id, u.name = id, name
	return nil
}

func TestEncodeRefusesLossyCodec(t *testing.T) {
	_, err := repository.Encode[*user](nil, &user{id: "1", name: "Ann"})
	assert.ErrorIs(t, err, repository.ErrCodec)
	assert.ErrorIs(t, err, locked.ErrInvalid)
	assert.Contains(t, err.Error(), "unexported")
}

func TestBinaryCodecRoundTrip(t *testing.T) {
	data, err := repository.Encode[*user](repository.Binary, &user{id: "1", name: "Ann"})
	require.NoError(t, err)
	u, err := repository.Decode[*user](repository.Binary, data)
	require.NoError(t, err)
	assert.Equal(t, &user{id: "1", name: "Ann"}, u)
}

func TestFuncsCodec(t *testing.T) {
	calls := 0
	c := repository.Funcs{
		MarshalFunc:   func(v any) ([]byte, error) { calls++; return json.Marshal(v) },
		UnmarshalFunc: func(b []byte, v any) error { calls++; return json.Unmarshal(b, v) },
	}
	data, err := repository.Encode[*Account](c, &Account{Number: "7", Balance: 3})
	require.NoError(t, err)
	a, err := repository.Decode[*Account](c, data)
	require.NoError(t, err)
	assert.Equal(t, &Account{Number: "7", Balance: 3}, a)
	assert.Equal(t, 3, calls) // encode, the round-trip check, the decode
}

func TestEncodeBadInput(t *testing.T) {
	_, err := repository.Encode[*Account](nil, nil)
	assert.ErrorIs(t, err, locked.ErrInvalid)
	_, err = repository.Encode[*Account](nil, &Account{})
	assert.ErrorIs(t, err, locked.ErrInvalid)
	_, err = repository.Encode[*Account](repository.Binary, &Account{Number: "1"})
	assert.ErrorIs(t, err, repository.ErrCodec, "Account has no MarshalBinary")
	_, err = repository.Decode[*Account](nil, []byte("{"))
	assert.Error(t, err)
}

// A Funcs with a nil function is an error, not a panic, and an interface
// entity type round-trips through its dynamic type.
func TestCodecEdges(t *testing.T) {
	_, err := repository.Encode[*Account](repository.Funcs{}, &Account{Number: "1"})
	assert.ErrorIs(t, err, repository.ErrCodec)
	assert.Contains(t, err.Error(), "no MarshalFunc")
	_, err = repository.Decode[*Account](repository.Funcs{}, []byte("{}"))
	assert.ErrorContains(t, err, "no UnmarshalFunc")

	data, err := repository.Encode[persistent.Persistent](nil, &Account{Number: "2", Balance: 5})
	require.NoError(t, err, "an interface-typed entity whose dynamic type survives JSON")
	assert.JSONEq(t, `{"Number":"2","Balance":5}`, string(data))
	_, err = repository.Encode[persistent.Persistent](nil, &user{id: "1", name: "Ann"})
	assert.ErrorIs(t, err, repository.ErrCodec, "unexported fields, through an interface type")
	_, err = repository.Decode[persistent.Persistent](nil, data)
	assert.Error(t, err, "Decode into an interface type cannot choose a concrete type")
}
