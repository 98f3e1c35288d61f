"""The PostgreSQL backend (``postgresql://...``): psycopg 3 + psycopg-pool, pgvector or ruvector."""
