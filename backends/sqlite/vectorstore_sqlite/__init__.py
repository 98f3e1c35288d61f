"""The SQLite backend (``sqlite:///path.db``): aiosqlite + sqlite-vec, WAL, one writer."""
