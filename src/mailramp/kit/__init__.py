"""Domain-free helpers: clock, ids, time, secrets, passwords."""
