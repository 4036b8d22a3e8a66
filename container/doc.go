// Package container wires lockproof into a go.uber.org/dig container, and
// owns the wiring rules that otherwise live only in comments: the provider
// is closed after the Service, the caller's Redis client is never closed
// here, and a Redis repository uses the Service's own Namespace and the
// provider's own client.
//
// The package only wires: every value it registers is built by the plain
// constructors (memprovider.New, redisprovider.New, redisprovider.NewRedlock,
// locked.New, repository.NewMemory, redisrepo.New), which stay usable
// without dig. Apps resolve values through [dig.Container.Invoke]; dig's
// errors pass through unchanged, so [dig.RootCause], errors.Is and
// errors.As on dig's and lockproof's types keep working.
//
// # What Provide registers
//
// [Provide] registers three values:
//
//   - a [provider.Provider]: a memprovider.Provider by default; a
//     redisprovider.Provider when a redis.UniversalClient is in the graph,
//     or one client is in the value group [RedisGroup] or given with
//     [Redis]; a redisprovider.Redlock when several clients are in the
//     group or given with [Redis];
//   - a *[locked.Service] on that provider, configured by a *locked.Options
//     in the graph if there is one (optional; nil means the defaults);
//   - a [Shutdown] that closes the Service, then the provider.
//
// Its optional inputs, all looked up in the graph when the values are
// first resolved:
//
//	[]redis.UniversalClient          the value group "lockproof.redis" (not with InMemory or Redis):
//	                                 one client per independent deployment; when not empty, it is
//	                                 used instead of a plain redis.UniversalClient
//	redis.UniversalClient            the Redis client (not with InMemory or Redis)
//	*locked.Options                  the Service's options
//	*redisprovider.Options           the Redis provider's options
//	*redisprovider.RedlockOptions    Redlock's options
//
// dig matches types exactly: register a *redis.Client as a
// redis.UniversalClient, with dig.As(new(redis.UniversalClient)) or a
// constructor that returns the interface.
//
// # Named Services
//
// [Name] registers a Service, its provider and its Shutdown under a dig
// name (tag fields `name:"…"` in a dig.In struct), and looks its optional
// inputs up under the same name (value groups cannot be named in dig: a
// Service named n reads the group "lockproof.redis.n"). One app can so hold a Redis Service and
// an in-memory one side by side, or two Redis Services with different
// Namespaces: pick the store per use by picking the Service.
//
// # Repositories
//
// [ProvideRepository] registers a repository.Repository[T] for the Service
// of the same name: a repository.Memory beside an in-memory provider, and a
// redisrepo.Repository beside a Redis provider, built from that provider's
// client and that Service's Namespace, so the two cannot disagree.
// [InMemory] asks for a repository.Memory whatever the provider.
//
// # Shutdown
//
// Invoke the [Shutdown] when the app stops. It closes the Service (releasing
// the leases still open) and then the provider (ending its goroutines); it
// never closes a Redis client, which belongs to whoever created it: close
// the client after Shutdown.
package container
