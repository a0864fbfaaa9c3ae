"""Open a store: create the engine, bring the schema to the newest revision, hand out sessions."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from types import TracebackType
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.orm import Session, sessionmaker

from backout.errors import BackoutError, NoStoreError, StoreError, UsageError
from backout.store import dialect

if TYPE_CHECKING:
    from alembic.config import Config

# The newest migration. Checked against alembic's own head by a test; knowing it here lets
# every command skip importing alembic (a fifth of start-up) when the schema is current.
HEAD_REVISION = "0013"

# What a server or SQLite says when the URL itself is wrong: retrying will not help (exit 2).
_WRONG_URL = re.compile(
    r"database \S+ does not exist|role \S+ does not exist|password authentication failed"
    r"|no password supplied|file is not a database"
)
_PG_URL_HINT = (
    "check the user, password and database name in the URL; backout creates its tables, "
    "not the database (`createdb NAME`)"
)


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(files("backout.store") / "migrations"))
    return config


class _RolledBack(Exception):
    """Ends a :meth:`Store.rolled_back` transaction by rolling it back."""


class Store:
    """A database holding runs, journals, snapshots and leases.

    Like an SQLAlchemy engine or an ``httpx.Client``, a store is made once (per CLI process,
    per server) and opened on first use: the first :meth:`session` prepares the SQLite
    folder and brings the schema to the newest revision. ``create=False`` (the read-only
    verbs) refuses a missing store with :class:`~backout.errors.NoStoreError` instead of
    creating one, so reading never leaves a store behind, and a verb refused before it
    touches the store (a bad plan) creates nothing. Use it as a context manager, or call
    :meth:`dispose` when done."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.create = create
        self._opened = False
        self._opening = threading.Lock()
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
        reader = self.engine.execution_options(**{dialect.READ_ONLY: True})
        self._readers = sessionmaker(reader, expire_on_commit=False)
        unsynced = self.engine.execution_options(**{dialect.UNSYNCED: True})
        self._unsynced = sessionmaker(unsynced, expire_on_commit=False)

    def open(self) -> Store:
        """Prepare and migrate now (idempotent; :meth:`session` calls it on first use)."""
        if self._opened:
            return self
        with self._opening:
            if not self._opened:
                path = dialect.sqlite_file(self.url)
                if path is not None:
                    dialect.prepare_sqlite(path, self.create)
                self.migrate(self.create)
                if path is not None:
                    dialect.make_private(path)
                self._opened = True
        return self

    @property
    def opened(self) -> bool:
        """Whether the store was opened (by :meth:`open` or a first session) yet."""
        return self._opened

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.dispose()

    @property
    def is_sqlite(self) -> bool:
        return dialect.is_sqlite(self.url)

    @property
    def where(self) -> str:
        """The store as a message names it: the SQLite file, or the URL without password."""
        path = dialect.sqlite_file(self.url)
        return str(path.absolute()) if path else self.safe_url

    def migrate(self, create: bool = True) -> None:
        """Upgrade to the newest schema; cheap when already there, safe with concurrent callers.
        ``create=False`` refuses an empty database instead of creating the tables in it."""
        try:
            revision = self.revision()
            if revision is None and not create:
                raise NoStoreError(f"no backout store in {self.where}", hint=dialect.NO_STORE_HINT)
            if revision != HEAD_REVISION:
                self._upgrade(revision)
        except DBAPIError as exc:
            raise self._unusable(exc) from exc

    def _upgrade(self, revision: str | None) -> None:
        from alembic import command
        from alembic.util import CommandError

        config = _alembic_config()
        try:
            with dialect.migration_lock(self.engine) as conn:
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
                conn.commit()
        except CommandError as exc:
            raise UsageError(
                f"{self.where} is at schema revision {revision!r}, which this backout "
                f"does not know: {exc}",
                hint="a store written by a newer backout? upgrade backout; otherwise "
                "this database is not a backout store",
            ) from exc
        except OSError as exc:  # the SQLite lock file next to the database
            raise StoreError(
                f"cannot upgrade store {self.where}: {exc.strerror}: {exc.filename}",
                hint="can this user write the store's folder and files?",
            ) from exc

    def _unusable(self, exc: DBAPIError) -> BackoutError:
        """A database error while opening, as one line: exit 2 when the URL itself is wrong
        (retrying cannot help), exit 1 when the database could not be reached."""
        reason = " ".join(str(exc.orig).split())
        if _WRONG_URL.search(reason):
            return UsageError(
                f"cannot open store {self.where}: {reason}",
                hint="check the path" if self.is_sqlite else _PG_URL_HINT,
            )
        if self.is_sqlite:
            return StoreError(
                f"cannot open store {self.where}: {reason}",
                hint="can this user read and write the file and its folder?",
            )
        return StoreError(
            f"cannot reach store {self.safe_url}: {reason}",
            hint="is the database running, and does the URL name it?",
        )

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
    def session(self, read_only: bool = False, *, synced: bool = True) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on error. The database going
        away (or its tables) is a StoreError; a unique key refusing a row stays an
        IntegrityError, which callers use (the journal's fencing, lease claims).
        ``read_only``: on SQLite, do not take the write lock (a frequent poll must not hold
        the one lock every writer needs). ``synced=False``: the commit is visible to every
        reader and survives this process dying, but it does not wait for the disk (a power
        cut may lose it, never a part of it); the next synced commit makes it durable too.
        Only for writes whose loss a resume handles (docs/operations.md, "What is synced
        when")."""
        self.open()
        writer = self._sessions if synced else self._unsynced
        sessions = self._readers if read_only else writer
        try:
            with sessions.begin() as session:
                yield session
        except IntegrityError:
            raise
        except DBAPIError as exc:
            raise StoreError(f"store {self.safe_url}: {' '.join(str(exc.orig).split())}") from exc

    @contextmanager
    def rolled_back(self, *, synced: bool = True) -> Iterator[Session]:
        """One write transaction that is always rolled back: its statements run (and are
        compiled, once per process) and nothing of them is kept; a notice registered in it
        is never sent. For rehearsing a path ahead of the moment it must be fast."""
        with contextlib.suppress(_RolledBack), self.session(synced=synced) as session:
            yield session
            raise _RolledBack

    def dispose(self) -> None:
        self.engine.dispose()


def open_store(url: str | None = None, *, create: bool = True) -> Store:
    """The store at ``url`` (default ``.backout/backout.db`` here), at the newest schema.

    Writing verbs create a missing store. Read-only verbs pass ``create=False``: a missing
    SQLite file or an empty database is then a UsageError naming it, so reading never
    leaves a store (or a folder) behind. SQLite stores are kept private (0700/0600)."""
    store = Store(url or dialect.DEFAULT_URL, create=create)
    try:
        return store.open()
    except BaseException:
        store.dispose()
        raise
