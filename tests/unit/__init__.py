"""Pure tests: no database, no simulator, no sockets, no processes."""
