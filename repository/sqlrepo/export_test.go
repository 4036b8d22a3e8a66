package sqlrepo

// SetAllPage sets the page size of All until the returned function
// restores it; tests use it to cross page boundaries with few records.
func SetAllPage(n int) (restore func()) {
	old := allPage
	allPage = n
	return func() { allPage = old }
}
