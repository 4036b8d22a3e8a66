package container

import (
	"errors"
	"fmt"
	"reflect"

	"go.uber.org/dig"

	"github.com/lockproof/lockproof/persistent"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/repository"
	"github.com/lockproof/lockproof/repository/redisrepo"
)

// errNotProvided: a repository was asked for a Service that Provide did
// not register, so its client and Namespace are unknown here.
var errNotProvided = errors.New("the *locked.Service was not registered by container.Provide, so its store is unknown; register it with container.Provide, or build the repository yourself")

// ProvideRepository registers a repository.Repository[T] in c for the
// *locked.Service registered by Provide under the same Name: a
// repository.Memory beside a memprovider, a redisrepo.Repository beside a
// redisprovider.Provider, on the provider's client and with the Service's
// Namespace. InMemory asks for a repository.Memory whatever the provider.
// A Redlock has no store of its own for records (see redisrepo), so
// resolving the repository of a Redlock Service without InMemory fails
// with an error matching locked.ErrInvalid. c.Provide's errors are
// returned unchanged.
func ProvideRepository[T persistent.Persistent](c *dig.Container, opts ...RepositoryOption) error {
	var cfg repoConfig
	for _, o := range opts {
		if o != nil {
			o.applyRepository(&cfg)
		}
	}
	if cfg.nameSet && cfg.name == "" {
		return fmt.Errorf("container: provide repository: %w", &provider.ArgError{Arg: "Name", Reason: "must not be empty"})
	}
	in := []param{{field: "Service", typ: serviceType}, {field: "Stack", typ: stackType, optional: true}}
	out := []param{{field: "Repository", typ: reflect.TypeFor[repository.Repository[T]]()}}
	build := func(args []reflect.Value) ([]any, error) {
		s, _ := args[1].Interface().(*stack)
		if s == nil || s.svc != args[0].Interface() {
			return nil, fmt.Errorf("container: repository of %s: %w", persistent.KindOf[T](), errNotProvided)
		}
		r, err := newRepository[T](s, cfg.memory)
		if err != nil {
			return nil, fmt.Errorf("container: repository of %s: %w", persistent.KindOf[T](), err)
		}
		return []any{r}, nil
	}
	return c.Provide(ctor(cfg.name, in, out, build), dig.LocationForPC(callerPC()))
}

// newRepository builds the repository of T for s: the store beside s's
// provider, or memory if asked.
func newRepository[T persistent.Persistent](s *stack, memory bool) (repository.Repository[T], error) {
	switch {
	case memory || s.kind == memoryKind:
		return repository.NewMemory[T](), nil
	case s.kind == redisKind:
		return newRedisRepository[T](s)
	}
	return nil, &provider.ArgError{Arg: "provider", Reason: "a Redlock has no store for records; ask for container.InMemory() or build a repository on one deployment yourself"}
}

// newRedisRepository is the one place that builds a Redis repository: on
// s's Service, whose provider's client and Namespace it takes.
func newRedisRepository[T persistent.Persistent](s *stack) (repository.Repository[T], error) {
	return redisrepo.New[T](s.svc, nil)
}
