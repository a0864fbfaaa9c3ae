"""What every ``sql``-family kind shares: where the database is (a SQLAlchemy URL, with an
optional password kept out of it), a connection with a hard time budget, and errors that
say what failed without ever showing a credential.

PostgreSQL URLs use psycopg 3 (``postgres://`` and ``postgresql://`` are accepted as
written); SQLite and any other dialect whose driver is installed work through SQLAlchemy
as they are. A PostgreSQL connection gets ``statement_timeout`` set to the budget left; a
SQLite one a progress handler that interrupts the statement at the deadline.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pydantic import Field

from backout.errors import ActionError
from backout.kernel.options import Context, Options
from backout.store.dialect import hide_password, normalize_url

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.engine import URL, CursorResult
    from sqlalchemy.exc import DBAPIError

SQLITE_CHECK_EVERY = 10_000  # virtual machine instructions between deadline checks


class Database(Options):
    """Options of every kind that talks to a database."""

    url: str = Field(
        min_length=1,
        description="SQLAlchemy URL, e.g. postgresql://app@db:5432/shop or sqlite:///app.db; "
        "usually `{{ secrets.db_url }}`.",
    )
    password: str | None = Field(
        None,
        description="The password, kept out of the URL (no escaping needed); usually "
        "`{{ secrets.db_password }}`.",
    )


class QueryTimeout(ActionError):
    """A statement ran out of its time budget (and was cancelled in the database)."""


def database_url(options: Database) -> URL:
    """The URL to connect with: the dialect's driver chosen, the password put in."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(normalize_url(options.url.strip()))
    except ArgumentError as exc:
        raise ActionError(
            f"not a database URL: {hide_password(options.url)!r}",
            hint="write e.g. postgresql://user@host:5432/db or sqlite:///path/app.db",
        ) from exc
    return url.set(password=options.password) if options.password is not None else url


def shown(options: Database) -> str:
    """The URL as it may be printed: never with its password."""
    try:
        return database_url(options).render_as_string(hide_password=True)
    except ActionError:
        return hide_password(options.url)


def backend(options: Database) -> str:
    """``postgresql``, ``sqlite``, ``mysql`` …"""
    return database_url(options).get_backend_name()


@contextmanager
def connect(options: Database, ctx: Context) -> Iterator[Connection]:
    """A connection inside a transaction (committed when the block ends without an error,
    rolled back otherwise), every statement bounded by ``ctx.timeout``. Database errors
    come out as :class:`~backout.errors.ActionError`, redacted."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
    from sqlalchemy.pool import NullPool

    deadline = time.monotonic() + ctx.timeout
    url = database_url(options)
    try:
        engine = create_engine(url, poolclass=NullPool, connect_args=_connect_args(url, ctx))
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ActionError(
            ctx.redact(f"cannot use {shown(options)}: {exc}"),
            hint="is the dialect's driver installed?",
        ) from exc
    try:
        with engine.connect() as connection:
            _bound(connection, deadline)
            with connection.begin():
                yield connection
    except DBAPIError as exc:
        raise error_of(exc, ctx, options) from exc
    except SQLAlchemyError as exc:
        raise ActionError(ctx.redact(f"{shown(options)}: {exc}")) from exc
    finally:
        engine.dispose()


@contextmanager
def raw_connection(options: Database, ctx: Context) -> Iterator[tuple[str, Any]]:
    """(dialect name, the driver's own connection in autocommit mode): for a caller that
    runs its own ``BEGIN`` … ``COMMIT`` (SQLite's driver would not put DDL in a
    transaction by itself). A SQLite statement is interrupted at the deadline."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError
    from sqlalchemy.pool import NullPool

    url = database_url(options)
    try:
        engine = create_engine(url, poolclass=NullPool, connect_args=_connect_args(url, ctx))
        pooled = engine.raw_connection()
    except DBAPIError as exc:
        raise error_of(exc, ctx, options) from exc
    except (SQLAlchemyError, ImportError) as exc:
        raise ActionError(ctx.redact(f"cannot use {shown(options)}: {exc}")) from exc
    try:
        driver = pooled.driver_connection
        name = url.get_backend_name()
        if name == "sqlite":
            assert isinstance(driver, sqlite3.Connection)
            driver.isolation_level = None
            driver.set_progress_handler(_past(time.monotonic() + ctx.timeout), SQLITE_CHECK_EVERY)
        elif name == "postgresql":
            driver.autocommit = True  # type: ignore[union-attr]
        yield name, driver
    finally:
        pooled.close()
        engine.dispose()


def _connect_args(url: URL, ctx: Context) -> dict[str, Any]:
    name = url.get_backend_name()
    if name == "postgresql":
        return {"connect_timeout": max(1, int(min(ctx.timeout, 10)))}
    if name == "sqlite":
        return {"timeout": min(ctx.timeout, 10.0)}
    return {}


def _bound(connection: Connection, deadline: float) -> None:
    """Cancel any statement still running at ``deadline``, in the database itself."""
    left = max(deadline - time.monotonic(), 0.001)
    name = connection.dialect.name
    if name == "postgresql":
        connection.exec_driver_sql(f"SET statement_timeout = {max(int(left * 1000), 1)}")
        connection.commit()
    elif name == "sqlite":
        raw = connection.connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        raw.set_progress_handler(_past(deadline), SQLITE_CHECK_EVERY)


def _past(deadline: float) -> Callable[[], int]:
    return lambda: int(time.monotonic() > deadline)


def error_of(exc: DBAPIError, ctx: Context, options: Database) -> ActionError:
    """The database's own words (its first line), never the URL's password."""
    orig = exc.orig
    message = (str(orig) if orig is not None else str(exc)).strip().splitlines()
    first = message[0] if message else type(exc).__name__
    if _timed_out(orig):
        return QueryTimeout(f"timed out after {ctx.timeout:g}s (the statement was cancelled)")
    if isinstance(exc.orig, Exception) and "OperationalError" in type(exc.orig).__name__:
        return ActionError(ctx.redact(f"{shown(options)}: {first}"))
    return ActionError(ctx.redact(first))


def _timed_out(orig: BaseException | None) -> bool:
    text_ = str(orig or "")
    return (
        "canceling statement due to statement timeout" in text_
        or getattr(orig, "sqlite_errorname", "") == "SQLITE_INTERRUPT"
        or text_ == "interrupted"
    )


def scalar_text(value: Any) -> str:
    """A query's value as baseline text: ``NULL`` for none, numbers without noise."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return str(value)


def run_sql(connection: Connection, query: str) -> CursorResult[Any]:
    """Run ``query`` as written: no bind parameters, so ``%`` and ``:name`` mean what they
    mean in the database's own SQL."""
    return connection.exec_driver_sql(query, execution_options={"no_parameters": True})


def one_value(connection: Connection, query: str) -> Any:
    """The first column of the only row ``query`` returns; an error naming what came back
    otherwise."""
    rows = run_sql(connection, query).fetchmany(2)
    if len(rows) != 1:
        got = "no rows" if not rows else "more than one row"
        raise ActionError(f"the query returned {got}; it must return exactly one row")
    return rows[0][0]
