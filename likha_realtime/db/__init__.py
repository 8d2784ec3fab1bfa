"""Database helpers for the host's settings: a PostgreSQL backend whose pool checks connections without a query."""
