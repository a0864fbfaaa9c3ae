"""Every SQLite/PostgreSQL difference lives here."""

from __future__ import annotations

import fcntl
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

DEFAULT_URL = "sqlite:///.backout/backout.db"
SQLITE_BUSY_TIMEOUT_S = 30


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
    return make_url(url).get_backend_name() == "sqlite"


def create(url: str) -> Engine:
    if is_sqlite(url):
        return _sqlite_engine(url)
    return create_engine(
        url, pool_pre_ping=True, pool_size=2, max_overflow=4, connect_args={"connect_timeout": 10}
    )


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # WAL lets readers run beside the writer; synchronous=FULL makes every commit durable
        # before we go on, which the write-ahead journal relies on.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # BEGIN IMMEDIATE takes the write lock up front: no deadlock between two upgraders.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@contextmanager
def migration_lock(engine: Engine) -> Iterator[Connection]:
    """Serialize schema upgrades across processes (two `backout run` at once on a new store)."""
    if is_sqlite(str(engine.url)):
        lock_path = (engine.url.database or "backout.db") + ".lock"
        with open(lock_path, "a") as handle, engine.connect() as conn:
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
