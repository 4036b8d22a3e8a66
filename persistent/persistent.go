// Package persistent defines what makes a domain type lockable.
//
// A lockable entity has a kind, the same for every value of its type, and an
// ID, unique within the kind. Its lock key is "kind:id", for example
// "account:42"; repositories file the entity under the same identity. Both
// parts must be non-empty, and the kind must not contain ':' so that keys of
// different kinds can never collide.
package persistent

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// Persistent is the constraint on entities that can be locked and stored.
//
// Kind must return a constant and must not depend on the value's fields:
// lockproof calls it on a new zero value of the type to learn the kind of an
// ID before any entity is loaded. Pointer entities (T = *Account) are the
// usual choice, so a locked entity can be modified in place and saved.
type Persistent interface {
	// Kind names the entity's type in lock keys and stores, e.g. "account".
	Kind() string
	// ID is the entity's identity within its kind, e.g. "42".
	ID() string
}

// ErrInvalid reports an entity or identity that cannot form a key: a nil
// entity, an empty ID, an empty kind or one containing ':'.
var ErrInvalid = errors.New("persistent: invalid identity")

// Key returns the lock key "kind:id" after checking both parts.
func Key(kind, id string) (string, error) {
	switch {
	case kind == "":
		return "", fmt.Errorf("%w: empty kind", ErrInvalid)
	case strings.Contains(kind, ":"):
		return "", fmt.Errorf("%w: kind %q contains ':'", ErrInvalid, kind)
	case id == "":
		return "", fmt.Errorf("%w: empty %s ID", ErrInvalid, kind)
	}
	return kind + ":" + id, nil
}

// KeyOf returns the lock key of e. A nil e (including a typed nil pointer)
// is an error, not a panic.
func KeyOf[T Persistent](e T) (string, error) {
	if isNil(e) {
		return "", fmt.Errorf("%w: nil %T entity", ErrInvalid, e)
	}
	return Key(e.Kind(), e.ID())
}

// KeyFor returns the lock key of the entity of type T with the given ID,
// without needing an entity.
func KeyFor[T Persistent](id string) (string, error) {
	return Key(KindOf[T](), id)
}

var kinds sync.Map // reflect.Type → string

// KindOf returns T's kind. For a pointer type it calls Kind on a pointer to a
// new zero value, so Kind may use either receiver. For an interface type,
// which has no value to ask, it returns "".
func KindOf[T Persistent]() string {
	t := reflect.TypeFor[T]()
	if k, ok := kinds.Load(t); ok {
		return k.(string)
	}
	var zero T
	switch t.Kind() {
	case reflect.Interface:
		return "" // no value to ask; Key reports the empty kind
	case reflect.Pointer:
		zero = reflect.New(t.Elem()).Interface().(T)
	}
	k := zero.Kind()
	kinds.Store(t, k)
	return k
}

func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface, reflect.Func, reflect.Chan:
		return rv.IsNil()
	}
	return false
}
