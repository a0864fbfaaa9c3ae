"""Every SQLite/PostgreSQL difference lives here.

SQLAlchemy is imported by the functions that make or inspect engines: the settings (and
`backout validate`) read :data:`DEFAULT_URL` and :func:`hide_password` without it."""

from __future__ import annotations

import errno
import fcntl
import os
import re
import sqlite3
import urllib.parse
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backout.errors import NoStoreError, StoreError, UsageError

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

DEFAULT_URL = "sqlite:///.backout/backout.db"
SQLITE_BUSY_TIMEOUT_S = 30
# A store holds journals, snapshots, change records and the audit log: only its owner may
# read it, whatever the umask. SQLite gives the -wal and -shm files the database's mode.
PRIVATE_FOLDER = 0o700
PRIVATE_FILE = 0o600
_OWN_FOLDER = ".backout"  # the default store's folder: backout's own, so kept private too
_SQLITE_COMPANIONS = ("", "-wal", "-shm", ".lock")
NO_STORE_HINT = (
    "a writing command creates one (`backout snapshot PLAN`, `backout run PLAN`); "
    "to read another store, pass --db URL or set BACKOUT_DATABASE_URL"
)


def normalize_url(url: str) -> str:
    """Accept the URLs people paste: ``postgres://`` and ``postgresql://`` use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def hide_password(url: str) -> str:
    """The URL as it may be shown: ``postgresql://user:***@host/db``."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def is_sqlite(url: str) -> bool:
    from sqlalchemy.engine import make_url

    return make_url(url).get_backend_name() == "sqlite"


def create(url: str) -> Engine:
    from sqlalchemy import create_engine

    if is_sqlite(url):
        return _sqlite_engine(url)
    engine = create_engine(
        url,
        pool_pre_ping=True,
        pool_size=2,
        max_overflow=4,
        # psycopg prepares a statement the second time a connection runs it (its default
        # is the fifth): the journal's few statements are prepared from the first step on
        connect_args={
            "connect_timeout": 10,
            "application_name": application_name(),
            "prepare_threshold": 1,
        },
    )
    _unsynced_commits(engine)
    return engine


def _unsynced_commits(engine: Engine) -> None:
    """PostgreSQL: an unsynced session's commit returns before the server flushes its WAL
    (still atomic; a later synced commit flushes it too)."""
    from sqlalchemy import event

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(UNSYNCED):
            conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


def application_name() -> str:
    """How this process's PostgreSQL connections name themselves (pg_stat_activity)."""
    return f"backout:{os.getpid()}"


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names; None for other databases and in-memory ones."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.query.get("uri"):
        return None
    database = parsed.database
    return Path(database) if database and database != ":memory:" else None


def prepare_sqlite(path: Path, create: bool) -> None:
    """Before SQLite opens ``path`` (which would create any missing file): a store that must
    exist does and is a SQLite file; a new one is created private, with its own folder but
    never the folders above it (a mistyped ``--db`` should not grow a tree)."""
    if path.exists():
        _check_sqlite_file(path)
        if not create and not _has_schema(path):
            raise NoStoreError(f"no backout store in {path.absolute()}", hint=NO_STORE_HINT)
    elif not create:
        raise NoStoreError(f"no store at {path.absolute()}", hint=NO_STORE_HINT)
    else:
        _create_private(path)


def _has_schema(path: Path) -> bool:
    """Whether the file holds backout's tables, asked without changing it: the engine's
    connections would turn any SQLite file they open into a WAL database."""
    try:
        with closing(sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S)) as conn:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
            ).fetchone()
    except sqlite3.Error:
        return True  # unreadable or damaged: opening it says why, in the store's own words
    return found is not None


def _check_sqlite_file(path: Path) -> None:
    if path.is_dir():
        raise UsageError(
            f"store {path} is a folder, not a database file",
            hint=f"name the file in it, e.g. --db sqlite:///{path / 'backout.db'}",
        )
    if not os.access(path, os.R_OK):
        raise StoreError(f"cannot open store {path}: {os.strerror(errno.EACCES)}")
    if _not_a_database(path):
        raise UsageError(
            f"{path} is not a backout store: it is not a SQLite database",
            hint="check the --db / BACKOUT_DATABASE_URL path; the default store is "
            ".backout/backout.db",
        )


def _not_a_database(path: Path) -> bool:
    """Whether SQLite says the file is not a database, asked through SQLite itself.

    Not by reading its first bytes: closing any descriptor of a file drops every POSIX lock
    the process holds on it, and SQLite's connections in this process (another store open
    on the file, the store watcher's) hold theirs there. Another process closing its last
    connection would then take this one for gone and delete the write-ahead log this
    process still writes to: its commits would be lost. SQLite keeps its own descriptors
    of a file open while any of its connections in the process holds a lock."""
    uri = "file:" + urllib.parse.quote(str(path.absolute())) + "?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True, timeout=SQLITE_BUSY_TIMEOUT_S)) as conn:
            conn.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as exc:
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB
    return False


def _create_private(path: Path) -> None:
    folder = path.parent
    try:
        if not folder.exists():
            _create_folder(folder)
        elif not folder.is_dir():
            raise UsageError(
                f"cannot create store {path}: {folder} is not a folder",
                hint="check the --db / BACKOUT_DATABASE_URL path",
            )
        os.close(_open_private(path))
    except OSError as exc:
        raise StoreError(
            f"cannot create store {path}: {exc.strerror}",
            hint=f"can this user write to {folder}?",
        ) from exc


def _open_private(path: str | Path) -> int:
    """Open ``path`` for appending; if this creates it, it is 0600 whatever the umask (one
    like 0277 would leave a file its owner cannot open for writing again)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:  # ours from before, or another process's a moment ago
        return os.open(path, os.O_WRONLY | os.O_APPEND)
    os.fchmod(fd, PRIVATE_FILE)
    return fd


def _create_folder(folder: Path) -> None:
    above = folder.parent
    if above.exists() and not above.is_dir():
        raise UsageError(
            f"cannot create store in {folder}: {above} is not a folder",
            hint="check the --db / BACKOUT_DATABASE_URL path",
        )
    if not above.exists():
        raise UsageError(
            f"cannot create store in {folder}: {above} does not exist",
            hint="backout creates the store's own folder, not the folders above it: "
            f"create {above} first, or check the --db / BACKOUT_DATABASE_URL path",
        )
    folder.mkdir(mode=PRIVATE_FOLDER, exist_ok=True)
    os.chmod(folder, PRIVATE_FOLDER)


def make_private(path: Path) -> None:
    """Take access away from other users on a store's files (and on backout's own
    ``.backout`` folder), as created by an older backout under a lax umask. A mode that
    grants nothing to others (0600, or a store shared with a group on purpose, 0660) stays."""
    targets = [(Path(f"{path}{suffix}"), PRIVATE_FILE) for suffix in _SQLITE_COMPANIONS]
    if path.parent.name == _OWN_FOLDER:
        targets.append((path.parent, PRIVATE_FOLDER))
    for target, mode in targets:
        try:
            info = target.stat()
            if info.st_uid == os.getuid() and info.st_mode & 0o007:
                os.chmod(target, mode)
        except OSError:
            continue  # gone, or not ours to change: the open goes on


READ_ONLY = "backout_read_only"  # execution option of sessions that only read
UNSYNCED = "backout_unsynced"  # execution option: commit without waiting for the disk


def _sqlite_engine(url: str) -> Engine:
    from sqlalchemy import create_engine, event

    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        # WAL lets readers run beside the writer; synchronous=FULL makes every commit durable
        # before we go on, which the write-ahead journal relies on.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
        record.info[_SYNCHRONOUS] = "FULL"

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # BEGIN IMMEDIATE takes the write lock up front: no deadlock between two upgraders;
        # a read-only session (a poll) takes no lock at all (WAL readers never block)
        options = conn.get_execution_options()
        if options.get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
            return
        _synchronous(conn, "NORMAL" if options.get(UNSYNCED) else "FULL")
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


_SYNCHRONOUS = "backout_synchronous"  # a SQLite connection's level now (its info)


def _synchronous(conn: Connection, level: str) -> None:
    """Set the connection's sync level for its next commit (outside a transaction: SQLite
    refuses the change inside one). In WAL mode FULL syncs the WAL at each commit; NORMAL
    writes the commit to the WAL without a sync, and the next FULL commit (or checkpoint)
    syncs it along with its own."""
    info = conn.connection.info
    if info.get(_SYNCHRONOUS) != level:
        conn.exec_driver_sql(f"PRAGMA synchronous={level}")
        info[_SYNCHRONOUS] = level


@contextmanager
def migration_lock(engine: Engine) -> Iterator[Connection]:
    """Serialize schema upgrades across processes (two `backout run` at once on a new store)."""
    from sqlalchemy import text

    if is_sqlite(str(engine.url)):
        lock_path = (engine.url.database or "backout.db") + ".lock"
        with os.fdopen(_open_private(lock_path), "a") as handle, engine.connect() as conn:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield conn
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(7244301)"))
        conn.commit()
        try:
            yield conn
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(7244301)"))
            conn.commit()


def skip_locked(engine: Engine) -> dict[str, Any]:
    """``with_for_update`` arguments: SKIP LOCKED where the database has it."""
    return {} if is_sqlite(str(engine.url)) else {"skip_locked": True}
