"""The store: SQLAlchemy models, repositories, alembic migrations, leases, the trigger inbox
and the audit chain, over SQLite or PostgreSQL (their differences live in :mod:`.dialect`)."""
