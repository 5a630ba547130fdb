package stream

// RecountEntries counts the entries e's state holds, device by device, for tests to check
// what e counts as it goes (Entries).
func RecountEntries(e *Engine) int {
	n := 0
	for _, d := range e.devices {
		_, size := d.age()
		n += size
	}
	return n
}
