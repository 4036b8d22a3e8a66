package repository

// Record returns the stored bytes of the record under the lock key
// ("kind:id"), for tests that must look at a record Find cannot reach (in
// a repository of an interface type).
func (m *Memory[T]) Record(key string) ([]byte, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	rec, ok := m.records[key]
	return rec.data, ok
}
