"""Open a store: create the engine, bring the schema to the newest revision, hand out sessions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from backout.errors import StoreError, UsageError
from backout.store import dialect

if TYPE_CHECKING:
    from alembic.config import Config

# The newest migration. Checked against alembic's own head by a test; knowing it here lets
# every command skip importing alembic (a fifth of start-up) when the schema is current.
HEAD_REVISION = "0004"


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(files("backout.store") / "migrations"))
    return config


class Store:
    """A database holding runs, journals, snapshots and leases."""

    def __init__(self, url: str) -> None:
        self.url = dialect.normalize_url(url)
        self.safe_url = dialect.hide_password(self.url)
        try:
            self.engine: Engine = dialect.create(self.url)
        except (ArgumentError, ImportError, ValueError) as exc:
            raise UsageError(
                f"cannot use store URL {self.safe_url!r}: {exc}",
                hint="use sqlite:///path/to/backout.db or postgresql://user@host:5432/dbname",
            ) from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return dialect.is_sqlite(self.url)

    def migrate(self) -> None:
        """Upgrade to the newest schema; cheap when already there, safe with concurrent callers."""
        try:
            if self.revision() == HEAD_REVISION:
                return
            from alembic import command

            config = _alembic_config()
            with dialect.migration_lock(self.engine) as conn:
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
                conn.commit()
        except OperationalError as exc:
            raise StoreError(
                f"cannot reach store {self.safe_url}: {exc.orig}",
                hint="is the database running, and does the URL name it?",
            ) from exc

    def revision(self) -> str | None:
        """The schema's migration revision, or None for an empty database."""
        with self.engine.connect() as conn:
            try:
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except (OperationalError, ProgrammingError) as exc:
                if "alembic_version" in str(exc.orig):
                    return None
                raise

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on error."""
        try:
            with self._sessions.begin() as session:
                yield session
        except OperationalError as exc:
            raise StoreError(f"store {self.safe_url}: {exc.orig}") from exc

    def dispose(self) -> None:
        self.engine.dispose()


def open_store(url: str | None = None) -> Store:
    store = Store(url or dialect.DEFAULT_URL)
    store.migrate()
    return store
