package locked

import (
	"fmt"
	"reflect"
	"strconv"
)

// Store identifies a lock store: the provider a Service takes its locks
// from, and the Service's Namespace. Two Services over the same provider
// value with the same Namespace share one Store, so their leases exclude
// each other and their fences are comparable; leases of different Stores
// are unrelated, even on the same key, and a record written under one must
// not be overwritten under the other. Repositories that keep their own
// records (repository.Memory) compare Stores to refuse a proof from
// another lock store.
//
// Store values are comparable with ==. The zero Store is that of no
// Service (a zero or nil Lease). A Store compares provider values, not the
// servers behind them: two redisprovider.Providers on one Redis are two
// Stores. A provider whose dynamic type is not comparable is identified by
// its Service instead, so each such Service is a Store of its own.
type Store struct {
	provider  any    // the provider; the *Service if the provider's type is not comparable
	namespace string // the Service's Namespace, "" for none
}

// Store returns the lock store of s (the zero Store for a nil Service).
func (s *Service) Store() Store {
	if s == nil {
		return Store{}
	}
	ns := s.prefix
	if ns != "" {
		ns = ns[:len(ns)-1] // drop the ":"
	}
	var id any = s.p
	if !reflect.TypeOf(s.p).Comparable() {
		id = s
	}
	return Store{provider: id, namespace: ns}
}

// Store returns the lock store of the Service that minted the lease (the
// zero Store for a zero or nil Lease).
func (l *Lease) Store() Store {
	if l == nil {
		return Store{}
	}
	return l.svc.Store()
}

// String describes the store for error messages: the provider's type and,
// for a pointer, its address, then the namespace if there is one.
func (st Store) String() string {
	if st.provider == nil {
		return "no lock store"
	}
	s := fmt.Sprintf("%T", st.provider)
	if v := reflect.ValueOf(st.provider); v.Kind() == reflect.Pointer {
		s += fmt.Sprintf("(%p)", st.provider)
	}
	if st.namespace != "" {
		s += " namespace " + strconv.Quote(st.namespace)
	}
	return s
}
