package store

// WithCountPage returns a copy of s whose counting queries read at most n
// keys per page, so tests exercise paging without megabytes of data.
func (s *Store) WithCountPage(n int32) *Store {
	c := *s
	c.countPage = n
	return &c
}
