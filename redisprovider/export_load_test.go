package redisprovider

// LoadSource is loadSource: the lock-and-load script built from an
// acquire script's source.
var LoadSource = loadSource

// AcquireSource and LoadScriptSource are the composed texts of the acquire
// and lock-and-load scripts the provider runs.
func AcquireSource() string    { return holdSource(acquireSrc) }
func LoadScriptSource() string { return loadSource(acquireSrc) }
