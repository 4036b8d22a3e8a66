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

// Redis gives Provide its Redis clients instead of reading them from the
// graph: one client gives a redisprovider.Provider, several (an odd number
// of independent deployments) a redisprovider.Redlock. Create them with
// ContextTimeoutEnabled. They stay the caller's: Shutdown does not close
// them. Default: the clients of the value group [RedisGroup] in the graph,
// else the redis.UniversalClient in the graph, if any.
func Redis(clients ...redis.UniversalClient) Option {
	if len(clients) == 0 {
		return invalidOption{&provider.ArgError{Arg: "Redis", Reason: "needs at least one client"}}
	}
	if err := distinct(clients); err != nil {
		return invalidOption{err}
	}
	return redisOption(clients)
}

// RedisGroup is the dig value group from which Provide reads its Redis
// clients when no [Redis] option is given: each value is a
// redis.UniversalClient of one independent deployment. One client in the
// group gives a redisprovider.Provider (any deployment: a server, Sentinel,
// Cluster), several a redisprovider.Redlock over them (each then one
// server or a Sentinel-managed primary: Redlock refuses Cluster and Ring
// clients). Put a client in the group with
//
//	c.Provide(newNodeA, dig.Group(container.RedisGroup))
//
// (newNodeA returning a redis.UniversalClient), or with a dig.Out field
// tagged `group:"lockproof.redis"`. A Service registered with [Name](n)
// reads the group [RedisGroup] + "." + n instead. When the group is not
// empty, a plain redis.UniversalClient in the graph is not used (it may be
// the app's own, for other work). The group's order does not matter to
// Redlock (dig does not keep it); the same client twice is an error
// matching locked.ErrInvalid, since a node counted twice breaks the quorum.
const RedisGroup = "lockproof.redis"

// redisGroup returns the value group of the Service named name.
func redisGroup(name string) string {
	if name == "" {
		return RedisGroup
	}
	return RedisGroup + "." + name
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
	case !cfg.memory && !cfg.redisSet && strings.ContainsAny(cfg.name, ",`"):
		return fmt.Errorf("container: provide: %w", &provider.ArgError{Arg: "Name", Reason: fmt.Sprintf("%q names the value group %s: it must not contain ',' or '`'", cfg.name, redisGroup(cfg.name))})
	}
	in := []param{
		{field: "Options", typ: reflect.TypeFor[*locked.Options](), optional: true},
		{field: "RedisOptions", typ: reflect.TypeFor[*redisprovider.Options](), optional: true},
		{field: "RedlockOptions", typ: reflect.TypeFor[*redisprovider.RedlockOptions](), optional: true},
	}
	fromGraph := !cfg.memory && !cfg.redisSet
	if fromGraph {
		in = append(in,
			param{field: "Client", typ: reflect.TypeFor[redis.UniversalClient](), optional: true},
			param{field: "Clients", typ: reflect.TypeFor[[]redis.UniversalClient](), group: redisGroup(cfg.name)})
	}
	out := []param{
		{field: "Stack", typ: stackType},
		{field: "Provider", typ: reflect.TypeFor[provider.Provider]()},
		{field: "Service", typ: serviceType},
		{field: "Shutdown", typ: reflect.TypeFor[Shutdown]()},
	}
	build := func(args []reflect.Value) ([]any, error) {
		lopts, _ := args[0].Interface().(*locked.Options)
		ropts, _ := args[1].Interface().(*redisprovider.Options)
		rlopts, _ := args[2].Interface().(*redisprovider.RedlockOptions)
		clients := cfg.clients
		if fromGraph {
			if group, _ := args[4].Interface().([]redis.UniversalClient); len(group) > 0 {
				clients = group
			} else if client, _ := args[3].Interface().(redis.UniversalClient); client != nil {
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
	if err := distinct(clients); err != nil {
		return nil, fmt.Errorf("container: provide: %w", err)
	}
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

// distinct returns an ArgError if a client occurs twice in clients (by
// identity: two clients of one server are not detected).
func distinct(clients []redis.UniversalClient) error {
	for i, a := range clients {
		if a == nil || !reflect.TypeOf(a).Comparable() {
			continue
		}
		for j, b := range clients[:i] {
			if a == b { // a's type is comparable: no panic
				return &provider.ArgError{Arg: fmt.Sprintf("clients[%d]", i),
					Reason: fmt.Sprintf("is clients[%d] again: a Redlock node counted twice breaks the quorum", j)}
			}
		}
	}
	return nil
}

// param is one field of a constructor's dig.In parameter or dig.Out
// result.
type param struct {
	field    string
	typ      reflect.Type
	optional bool
	group    string // a value group (typ is a slice): tagged with it, not with the name
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
		if p.group != "" { // dig allows neither a name nor optional on a group
			tags = append(tags, "group:"+strconv.Quote(p.group))
		}
		if name != "" && p.group == "" {
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
