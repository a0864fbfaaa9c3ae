"""Shared fixtures. The store fixture runs every store test on SQLite and on PostgreSQL.

PostgreSQL comes from ``BACKOUT_TEST_POSTGRES_URL`` (default: the local server, database
``test``); the session creates a database of its own and each test a schema in it, all
dropped afterwards. Without a server the
PostgreSQL half is skipped with one line saying what to start — unless
``BACKOUT_REQUIRE_SERVICES=1`` (CI), which turns that skip into a failure.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

PG_URL = os.environ.get("BACKOUT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_SERVICES = os.environ.get("BACKOUT_REQUIRE_SERVICES") == "1"


def missing_service(message: str) -> None:
    """Skip with one clear line, or fail when CI requires every real service."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} (BACKOUT_REQUIRE_SERVICES=1 forbids skipping)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_admin() -> str:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            pass
    except psycopg.OperationalError as exc:
        missing_service(
            f"PostgreSQL not reachable at {PG_URL}: start it or set "
            f"BACKOUT_TEST_POSTGRES_URL ({str(exc).strip()[:80]})"
        )
    return PG_URL


@pytest.fixture(scope="session")
def postgres_database(postgres_admin: str) -> Iterator[str]:
    """One database for the whole session, dropped at the end."""
    name = f"backout_t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield f"{postgres_admin.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(postgres_admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def postgres_url(postgres_database: str) -> Iterator[str]:
    """A fresh, empty schema of the session's database for each test (CREATE DATABASE costs
    about a second on PostgreSQL; a schema costs milliseconds). The URL selects it through
    ``search_path``, so everything the test runs — in process or in a subprocess — sees
    only its own tables."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    yield f"{postgres_database}?options=-csearch_path%3D{schema}"
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store URL: one SQLite file, or one PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'backout.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(autouse=True)
def _dispose_test_stores() -> Iterator[None]:
    """Stores made by ``tests.callers.caller`` during a test are disposed after it."""
    yield
    from tests.callers import dispose_all

    dispose_all()


# --- no process left behind ----------------------------------------------------------------
# Every process a test starts inherits this tag through its environment (the tests pass
# ``{**os.environ, ...}``; backout passes its own environment on to steps). At the end of
# the session, a process still carrying this session's tag was leaked by the test named
# in its BACKOUT_TEST_NODE: the run fails, and the process is killed by its pid.
# The tag is set by the first test a process runs (so an xdist controller, which runs none,
# never tags its workers).
SESSION_TAG = f"backout-test-{uuid.uuid4().hex}"


@pytest.fixture(autouse=True)
def _tag_processes_with_the_test(request: pytest.FixtureRequest) -> Iterator[None]:
    os.environ["BACKOUT_TEST_SESSION"] = SESSION_TAG
    os.environ["BACKOUT_TEST_NODE"] = request.node.nodeid
    yield
    os.environ["BACKOUT_TEST_NODE"] = ""


def tagged_processes() -> dict[int, str]:
    """Live processes (not zombies, not this one) started under this session: pid -> test."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z" or f"BACKOUT_TEST_SESSION={SESSION_TAG}".encode() not in environ:
            continue
        node = next(
            (v.split(b"=", 1)[1].decode() for v in environ if v.startswith(b"BACKOUT_TEST_NODE=")),
            "?",
        )
        found[int(entry.name)] = node
    return found


@pytest.fixture(scope="session", autouse=True)
def _no_process_left_behind() -> Iterator[None]:
    """Torn down last (autouse, session scope): fails the run, naming the test, when a
    process this session started still runs; kills it by its pid."""
    yield
    if not Path("/proc").is_dir():
        return
    deadline = time.monotonic() + 10  # processes being stopped right now get a moment
    leaked = tagged_processes()
    while leaked and time.monotonic() < deadline:
        time.sleep(0.1)
        leaked = tagged_processes()
    if not leaked:
        return
    lines = [f"  pid {pid} ({_cmdline(pid)}) started by {node}" for pid, node in leaked.items()]
    for pid in leaked:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    pytest.fail("leaked processes (killed now):\n" + "\n".join(lines), pytrace=False)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
    except OSError:
        return "?"
