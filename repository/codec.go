package repository

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/persistent"
)

// A Codec turns entities into the bytes a repository stores, and back.
// Repositories take one as an option; the default is JSON.
type Codec interface {
	// Marshal encodes v, an entity.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a pointer to a new entity value.
	Unmarshal(data []byte, v any) error
}

// JSON is the default Codec: encoding/json, which stores T's exported
// fields. An entity whose state is in unexported fields needs another codec
// (Binary, or Funcs) or MarshalJSON/UnmarshalJSON methods.
var JSON Codec = jsonCodec{}

// Binary is a Codec for entities that implement encoding.BinaryMarshaler
// and (with a pointer receiver, usually) encoding.BinaryUnmarshaler: the
// usual way to store an entity that keeps its state in unexported fields.
var Binary Codec = binaryCodec{}

type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

type binaryCodec struct{}

func (binaryCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(encoding.BinaryMarshaler)
	if !ok {
		return nil, fmt.Errorf("%T does not implement encoding.BinaryMarshaler", v)
	}
	return m.MarshalBinary()
}

func (binaryCodec) Unmarshal(data []byte, v any) error {
	if u, ok := v.(encoding.BinaryUnmarshaler); ok {
		return u.UnmarshalBinary(data)
	}
	// v is a *T; with T a pointer type, the method is on the *T's target.
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.Elem().Kind() == reflect.Pointer {
		if u, ok := rv.Elem().Interface().(encoding.BinaryUnmarshaler); ok {
			return u.UnmarshalBinary(data)
		}
	}
	return fmt.Errorf("%T does not implement encoding.BinaryUnmarshaler", v)
}

// Funcs is a Codec made of two functions, for a format of the caller's.
type Funcs struct {
	MarshalFunc   func(v any) ([]byte, error)
	UnmarshalFunc func(data []byte, v any) error
}

// Marshal calls MarshalFunc; if it is nil, Marshal returns an error.
func (f Funcs) Marshal(v any) ([]byte, error) {
	if f.MarshalFunc == nil {
		return nil, errors.New("repository.Funcs has no MarshalFunc")
	}
	return f.MarshalFunc(v)
}

// Unmarshal calls UnmarshalFunc; if it is nil, Unmarshal returns an error.
func (f Funcs) Unmarshal(data []byte, v any) error {
	if f.UnmarshalFunc == nil {
		return errors.New("repository.Funcs has no UnmarshalFunc")
	}
	return f.UnmarshalFunc(data, v)
}

// ErrCodec reports an entity that its codec cannot store faithfully: it
// does not encode, or does not decode back to the same identity (the usual
// cause: JSON and an entity whose fields are unexported). It matches
// locked.ErrInvalid; nothing was written.
var ErrCodec = fmt.Errorf("repository: entity does not survive its codec: %w", locked.ErrInvalid)

// Encode encodes e with c (JSON if c is nil) and checks that the bytes
// decode to an entity with e's lock key, so that a codec which loses the
// entity's state is refused at the write rather than discovered at the next
// read. Repositories call it in Insert and Save; its error matches ErrCodec.
func Encode[T persistent.Persistent](c Codec, e T) ([]byte, error) {
	key, err := persistent.KeyOf(e)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", locked.ErrInvalid, err)
	}
	c = codecOr(c)
	data, err := c.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: encode: %w", ErrCodec, key, err)
	}
	// Decode into e's own type: for an interface T (Memory[persistent.Persistent])
	// a new T would be a nil interface, which no codec can fill.
	back, err := decode[T](c, data, reflect.TypeOf(e))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCodec, key, err)
	}
	if got, _ := persistent.KeyOf(back); got != key {
		return nil, fmt.Errorf("%w: %s decodes as %q (are its fields unexported? set a Codec)", ErrCodec, key, got)
	}
	return data, nil
}

// Decode decodes data with c (JSON if c is nil) into a new T; for a
// pointer type T it allocates the value pointed to.
func Decode[T persistent.Persistent](c Codec, data []byte) (T, error) {
	return decode[T](c, data, reflect.TypeFor[T]())
}

// decode decodes data with c into a new value of type t, which is T or,
// for an interface T, a type that implements it; for a pointer type t it
// allocates the value pointed to. The codec is given a pointer to the new
// value (a *T for a concrete T).
func decode[T persistent.Persistent](c Codec, data []byte, t reflect.Type) (T, error) {
	var zero T
	v := reflect.New(t) // *t
	if t.Kind() == reflect.Pointer {
		v.Elem().Set(reflect.New(t.Elem()))
	}
	if err := codecOr(c).Unmarshal(data, v.Interface()); err != nil {
		return zero, fmt.Errorf("decode: %w", err)
	}
	e, ok := v.Elem().Interface().(T)
	if !ok { // a nil interface: t was an interface type
		return zero, fmt.Errorf("decode: %v is an interface type; the codec cannot choose a concrete type", t)
	}
	return e, nil
}

func codecOr(c Codec) Codec {
	if c == nil {
		return JSON
	}
	return c
}
