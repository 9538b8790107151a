package authstate

// StoredTickets reports how many tickets m holds, used or not, so tests
// can check that expired ones are pruned.
func StoredTickets(m *MemoryTickets) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.tickets)
}
