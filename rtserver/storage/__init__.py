"""SQLite storage: the durable truth that every node shares."""
