package locked

import "github.com/lockproof/lockproof/provider"

// Provider returns the provider s takes its locks from (nil for a nil
// Service). A store that keeps its records beside the locks
// (repository/redisrepo) gets its client and key layout from it, so that
// they cannot disagree with the Service's.
func (s *Service) Provider() provider.Provider {
	if s == nil {
		return nil
	}
	return s.p
}

// Namespace returns s's Options.Namespace ("" for none, and for a nil
// Service): the prefix, before ":", of every key s locks in its provider.
func (s *Service) Namespace() string {
	if s == nil || s.prefix == "" {
		return ""
	}
	return s.prefix[:len(s.prefix)-1]
}
