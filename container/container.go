package container

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
	"go.uber.org/dig"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/redisprovider"
)

// Shutdown closes what Provide built, in order: the Service (releasing the
// leases it still has open), then the provider (ending its goroutines). It
// never closes a Redis client: close that after Shutdown. It returns the
// first call's error on every call.
type Shutdown func() error

// Option configures Provide.
type Option interface{ applyProvide(*provideConfig) }

// RepositoryOption configures ProvideRepository.
type RepositoryOption interface{ applyRepository(*repoConfig) }

// SharedOption is an option of both Provide and ProvideRepository.
type SharedOption interface {
	Option
	RepositoryOption
}

type provideConfig struct {
	name      string
	nameSet   bool
	memory    bool
	clients   []redis.UniversalClient
	redisSet  bool
	badOption error
}

type repoConfig struct {
	name    string
	nameSet bool
	memory  bool
}

type nameOption string

func (n nameOption) applyProvide(c *provideConfig)    { c.name, c.nameSet = string(n), true }
func (n nameOption) applyRepository(c *repoConfig)    { c.name, c.nameSet = string(n), true }
func (memoryOption) applyProvide(c *provideConfig)    { c.memory = true }
func (memoryOption) applyRepository(c *repoConfig)    { c.memory = true }
func (o redisOption) applyProvide(c *provideConfig)   { c.clients, c.redisSet = o, true }
func (o invalidOption) applyProvide(c *provideConfig) { c.badOption = cmp.Or(c.badOption, o.err) }

type (
	memoryOption  struct{}
	redisOption   []redis.UniversalClient
	invalidOption struct{ err error }
)

// Name registers the values under a dig name, and looks their optional
// inputs up under the same name; for ProvideRepository it also picks the
// Service of that name. The name must not be empty. Default: no name.
func Name(name string) SharedOption { return nameOption(name) }

// InMemory makes Provide use a memprovider.Provider even if a Redis client
// is in the graph, and ProvideRepository a repository.Memory whatever the
// provider. Default: the store beside the provider.
func InMemory() SharedOption { return memoryOption{} }

// Redis gives Provide its Redis clients instead of reading one from the
// graph: one client gives a redisprovider.Provider, several (an odd number
// of independent deployments) a redisprovider.Redlock. Create them with
// ContextTimeoutEnabled. They stay the caller's: Shutdown does not close
// them. Default: the redis.UniversalClient in the graph, if any.
func Redis(clients ...redis.UniversalClient) Option {
	if len(clients) == 0 {
		return invalidOption{&provider.ArgError{Arg: "Redis", Reason: "needs at least one client"}}
	}
	return redisOption(clients)
}

// kind is the provider a stack was built on.
type kind int

const (
	memoryKind  kind = iota
	redisKind        // one Redis deployment: redisprovider.Provider
	redlockKind      // several: redisprovider.Redlock
)

// stack is what one Provide call built; ProvideRepository reads it so that
// a repository is built from the same client and Namespace as the Service.
type stack struct {
	kind      kind
	svc       *locked.Service
	p         provider.Provider
	redis     *redisprovider.Provider // for redisKind
	client    redis.UniversalClient   // for redisKind: the client of redis
	namespace string                  // the Service's Options.Namespace
	shutdown  Shutdown
}

var (
	stackType   = reflect.TypeFor[*stack]()
	serviceType = reflect.TypeFor[*locked.Service]()
)

// Provide registers a provider.Provider, a *locked.Service on it and a
// Shutdown in c; the package documentation lists the optional inputs. The
// values are built when first resolved through c.Invoke. Bad options are
// an error matching locked.ErrInvalid, and then nothing is registered;
// c.Provide's errors are returned unchanged.
func Provide(c *dig.Container, opts ...Option) error {
	var cfg provideConfig
	for _, o := range opts {
		if o != nil {
			o.applyProvide(&cfg)
		}
	}
	switch {
	case cfg.badOption != nil:
		return fmt.Errorf("container: provide: %w", cfg.badOption)
	case cfg.nameSet && cfg.name == "":
		return fmt.Errorf("container: provide: %w", &provider.ArgError{Arg: "Name", Reason: "must not be empty"})
	case cfg.memory && cfg.redisSet:
		return fmt.Errorf("container: provide: %w", &provider.ArgError{Arg: "InMemory", Reason: "cannot be combined with Redis"})
	}
	in := []param{
		{"Options", reflect.TypeFor[*locked.Options](), true},
		{"RedisOptions", reflect.TypeFor[*redisprovider.Options](), true},
		{"RedlockOptions", reflect.TypeFor[*redisprovider.RedlockOptions](), true},
	}
	fromGraph := !cfg.memory && !cfg.redisSet
	if fromGraph {
		in = append(in, param{"Client", reflect.TypeFor[redis.UniversalClient](), true})
	}
	out := []param{
		{"Stack", stackType, false},
		{"Provider", reflect.TypeFor[provider.Provider](), false},
		{"Service", serviceType, false},
		{"Shutdown", reflect.TypeFor[Shutdown](), false},
	}
	build := func(args []reflect.Value) ([]any, error) {
		lopts, _ := args[0].Interface().(*locked.Options)
		ropts, _ := args[1].Interface().(*redisprovider.Options)
		rlopts, _ := args[2].Interface().(*redisprovider.RedlockOptions)
		clients := cfg.clients
		if fromGraph {
			if client, _ := args[3].Interface().(redis.UniversalClient); client != nil {
				clients = []redis.UniversalClient{client}
			}
		}
		s, err := newStack(clients, lopts, ropts, rlopts)
		if err != nil {
			return nil, err
		}
		return []any{s, s.p, s.svc, s.shutdown}, nil
	}
	return c.Provide(ctor(cfg.name, in, out, build), dig.LocationForPC(callerPC()))
}

// newStack builds the provider (on clients, if any) and the Service. If
// the Service cannot be built, the provider is closed again.
func newStack(clients []redis.UniversalClient, opts *locked.Options, ropts *redisprovider.Options, rlopts *redisprovider.RedlockOptions) (*stack, error) {
	s := &stack{}
	switch len(clients) {
	case 0:
		s.kind, s.p = memoryKind, memprovider.New()
	case 1:
		rp, err := redisprovider.New(clients[0], ropts)
		if err != nil {
			return nil, err
		}
		s.kind, s.p, s.redis, s.client = redisKind, rp, rp, clients[0]
	default:
		rl, err := redisprovider.NewRedlock(clients, rlopts)
		if err != nil {
			return nil, err
		}
		s.kind, s.p = redlockKind, rl
	}
	svc, err := locked.New(s.p, opts)
	if err != nil {
		return nil, errors.Join(err, s.p.Close())
	}
	s.svc = svc
	if opts != nil {
		s.namespace = opts.Namespace
	}
	s.shutdown = sync.OnceValue(func() error {
		return errors.Join(svc.Close(), s.p.Close()) // the Service releases its leases through the provider: close it first
	})
	return s, nil
}

// param is one field of a constructor's dig.In parameter or dig.Out
// result.
type param struct {
	field    string
	typ      reflect.Type
	optional bool
}

// ctor returns a constructor for dig that takes a dig.In struct with a
// field per param of in and returns a dig.Out struct with a field per
// param of out, and an error; every field is tagged with name, if not
// empty. build gets the in fields in order and returns the out values in
// order. dig's tags are static, so the structs and the function are made
// with reflect, as fx.ParamTags does; one constructor registers all of
// out, so a failed c.Provide registers nothing.
func ctor(name string, in, out []param, build func([]reflect.Value) ([]any, error)) any {
	inType := tagged(reflect.TypeFor[dig.In](), name, in)
	outType := tagged(reflect.TypeFor[dig.Out](), name, out)
	errType := reflect.TypeFor[error]()
	fn := reflect.FuncOf([]reflect.Type{inType}, []reflect.Type{outType, errType}, false)
	return reflect.MakeFunc(fn, func(args []reflect.Value) []reflect.Value {
		vals := make([]reflect.Value, len(in))
		for i := range in {
			vals[i] = args[0].Field(i + 1)
		}
		res := reflect.New(outType).Elem()
		outs, err := build(vals)
		if err != nil {
			return []reflect.Value{res, reflect.ValueOf(&err).Elem()}
		}
		for i, v := range outs {
			res.Field(i + 1).Set(reflect.ValueOf(v))
		}
		return []reflect.Value{res, reflect.Zero(errType)}
	}).Interface()
}

// tagged returns a struct type that embeds embed (dig.In or dig.Out) and
// has a field per param, tagged with name and optional.
func tagged(embed reflect.Type, name string, ps []param) reflect.Type {
	fields := []reflect.StructField{{Name: embed.Name(), Type: embed, Anonymous: true}}
	for _, p := range ps {
		var tags []string
		if name != "" {
			tags = append(tags, "name:"+strconv.Quote(name))
		}
		if p.optional {
			tags = append(tags, `optional:"true"`)
		}
		fields = append(fields, reflect.StructField{Name: p.field, Type: p.typ, Tag: reflect.StructTag(strings.Join(tags, " "))})
	}
	return reflect.StructOf(fields)
}

// callerPC returns the program counter of the call to Provide or
// ProvideRepository, so that dig's errors name the caller's line instead
// of reflect's.
func callerPC() uintptr {
	pc, _, _, _ := runtime.Caller(2)
	return pc
}
