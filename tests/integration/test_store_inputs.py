"""Where the store is, and what happens when it is not there: read-only verbs never create
a store (on SQLite and PostgreSQL), a --db that names something else is refused without
touching it, store URLs that cannot work are one clear line, and a SQLite store is private
whatever the umask."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import stat
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from backout.cli import cli
from backout.store import audit
from backout.store.db import Store, open_store

# every verb that only reads the store (flags list/get live in backout.flags, not here)
READ_ONLY = [
    ["runs"],
    ["status", "abc123"],
    ["journal", "abc123"],
    ["explain", "abc123"],
    ["audit", "log"],
    ["audit", "verify"],
    ["audit", "checkpoint"],
    ["outbox", "list"],
    ["change", "list"],
    ["change", "show", "1"],
    ["gate", "1"],
]
PLAN = """plan: web
baseline:
  config: {file_hash: app.conf}
steps:
  - name: restart
    run: ["true"]
    timeout: 5s
"""


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["--actor", "ci-bot", *args], obj={})


def verb_id(args: list[str]) -> str:
    return "-".join(args[:2])


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def tables_in(url: str) -> list[str]:
    """The tables of a PostgreSQL test URL's own schema (selected by its search_path)."""
    match = re.search(r"search_path%3D(\w+)", url)
    assert match, url
    with psycopg.connect(url.split("?")[0]) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (match.group(1),),
        ).fetchall()
    return [row[0] for row in rows]


def assert_one_error(result: Result, code: int, message: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: "), result.stderr
    assert message in lines[0], result.stderr
    assert len(lines) == 2, result.stderr
    assert lines[1].startswith("hint: "), result.stderr


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BACKOUT_DATABASE_URL", raising=False)
    (tmp_path / "plan.yaml").write_text(PLAN)
    (tmp_path / "app.conf").write_text("workers = 4\n")
    return tmp_path


def raw_sql(url: str, statement: str) -> None:
    """SQL straight to the database, as someone with access to it would run it."""
    store = Store(url)
    try:
        with store.engine.begin() as conn:
            conn.execute(text(statement))
    finally:
        store.dispose()


@contextmanager
def umask(value: int) -> Iterator[None]:
    previous = os.umask(value)
    try:
        yield
    finally:
        os.umask(previous)


# --- read-only verbs never create a store ------------------------------------------------
@pytest.mark.parametrize("args", READ_ONLY, ids=verb_id)
def test_read_only_verbs_do_not_create_the_default_store(in_tmp: Path, args: list[str]) -> None:
    result = invoke(*args)
    assert_one_error(result, 2, f"no store at {in_tmp / '.backout' / 'backout.db'}")
    assert "backout snapshot PLAN" in result.stderr
    assert "--db URL or set BACKOUT_DATABASE_URL" in result.stderr
    assert sorted(p.name for p in in_tmp.iterdir()) == ["app.conf", "plan.yaml"]


@pytest.mark.parametrize("args", READ_ONLY, ids=verb_id)
def test_read_only_verbs_do_not_create_a_store_on_either_database(
    store_url: str, args: list[str]
) -> None:
    """The fixture's SQLite file and its folder do not exist; its PostgreSQL schema is
    empty. Neither gets anything from a verb that only reads."""
    result = invoke("--db", store_url, *args)
    if store_url.startswith("sqlite"):
        path = Path(store_url.removeprefix("sqlite:///"))
        assert_one_error(result, 2, f"no store at {path}")
        assert not path.parent.exists()
    else:
        assert_one_error(result, 2, "no backout store in postgresql+psycopg://")
        assert tables_in(store_url) == []


def test_writing_verbs_still_create_the_default_store(in_tmp: Path) -> None:
    assert invoke("snapshot", "plan.yaml").exit_code == 0
    assert (in_tmp / ".backout" / "backout.db").is_file()
    listed = invoke("runs", "--json")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == []


def test_a_read_only_verb_does_not_touch_an_empty_or_foreign_sqlite_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    foreign = tmp_path / "app.db"  # another program's database
    with closing(sqlite3.connect(foreign)) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
        conn.commit()
    foreign_bytes = foreign.read_bytes()
    for path, before in ((empty, b""), (foreign, foreign_bytes)):
        result = invoke("--db", f"sqlite:///{path}", "runs")
        assert_one_error(result, 2, f"no backout store in {path}")
        assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db", "empty.db"]


# --- a --db that names something else ---------------------------------------------------
@pytest.mark.parametrize("verb", [["runs"], ["snapshot", "plan.yaml"], ["run", "plan.yaml"]])
def test_a_file_that_is_not_a_database_is_refused_and_left_alone(
    in_tmp: Path, verb: list[str]
) -> None:
    plan = in_tmp / "plan.yaml"
    plan.chmod(0o644)
    result = invoke("--db", f"sqlite:///{plan}", *verb)
    assert_one_error(result, 2, f"{plan} is not a backout store: it is not a SQLite database")
    assert plan.read_text() == PLAN
    assert mode(plan) == 0o644
    assert sorted(p.name for p in in_tmp.iterdir()) == ["app.conf", "plan.yaml"]


def test_a_path_under_a_file_is_refused(in_tmp: Path) -> None:
    assert_one_error(invoke("--db", "sqlite:////dev/null/x.db", "runs"), 2, "no store at")
    created = invoke("--db", "sqlite:////dev/null/x.db", "snapshot", "plan.yaml")
    assert_one_error(created, 2, "cannot create store /dev/null/x.db: /dev/null is not a folder")


def test_a_folder_is_not_a_store(in_tmp: Path) -> None:
    result = invoke("--db", f"sqlite:///{in_tmp}", "runs")
    assert_one_error(result, 2, f"store {in_tmp} is a folder, not a database file")


def test_a_writing_verb_creates_the_stores_folder_but_no_folder_above_it(in_tmp: Path) -> None:
    typo = in_tmp / "vra" / "lib" / "backout.db"
    result = invoke("--db", f"sqlite:///{typo}", "snapshot", "plan.yaml")
    assert_one_error(result, 2, f"cannot create store in {typo.parent}: {typo.parent.parent}")
    assert "does not exist" in result.stderr
    assert f"create {typo.parent.parent} first" in result.stderr
    assert not (in_tmp / "vra").exists()
    own = in_tmp / "stores" / "backout.db"
    assert invoke("--db", f"sqlite:///{own}", "snapshot", "plan.yaml").exit_code == 0
    assert own.is_file()
    assert mode(own.parent) == 0o700


def test_a_store_from_a_newer_backout_is_refused_untouched(store_url: str) -> None:
    open_store(store_url).dispose()
    raw_sql(store_url, "UPDATE alembic_version SET version_num = '9999'")
    for verb in (["runs"], ["audit", "checkpoint"]):
        result = invoke("--db", store_url, *verb)
        assert_one_error(result, 2, "is at schema revision '9999', which this backout")
        assert "upgrade backout" in result.stderr
    assert Store(store_url).revision() == "9999"


# --- PostgreSQL URLs that cannot work ----------------------------------------------------
def _pg_url(admin: str, user: str, database: str) -> str:
    host = admin.split("@", 1)[1].rsplit("/", 1)[0]
    return f"postgresql://{user}:s3cret-pw@{host}/{database}"


@pytest.mark.parametrize(
    ("user", "database", "message"),
    [
        ("postgres", "no_such_db_{}", 'database "no_such_db_'),
        ("no_such_role_{}", "postgres", 'role "no_such_role_'),
    ],
)
def test_a_postgres_url_naming_what_the_server_lacks_is_bad_input(
    in_tmp: Path, postgres_admin: str, user: str, database: str, message: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    url = _pg_url(postgres_admin, user.format(tag), database.format(tag))
    for verb in (["runs"], ["snapshot", "plan.yaml"]):
        result = invoke("--db", url, *verb)
        assert_one_error(result, 2, "cannot open store postgresql+psycopg://")
        assert message in result.stderr
        assert "does not exist" in result.stderr
        assert "s3cret-pw" not in result.output
        assert ":***@" in result.stderr
        assert "createdb NAME" in result.stderr


# --- a private store ---------------------------------------------------------------------
@pytest.mark.parametrize("mask", [0o022, 0o000, 0o277], ids=["umask022", "umask000", "umask277"])
def test_a_new_store_is_private_whatever_the_umask(in_tmp: Path, mask: int) -> None:
    with umask(mask):
        assert invoke("snapshot", "plan.yaml").exit_code == 0
        folder = in_tmp / ".backout"
        assert mode(folder) == 0o700
        assert {p.name: mode(p) for p in folder.iterdir()} == {
            "backout.db": 0o600,
            "backout.db.lock": 0o600,
        }
        # SQLite creates -wal and -shm while the store is open: they get the file's mode
        store = open_store()
        try:
            with store.session() as session:
                audit.append(session, "ci-bot", "test.write", "test:1")
            assert {p.name: mode(p) for p in folder.iterdir()} == {
                "backout.db": 0o600,
                "backout.db-shm": 0o600,
                "backout.db-wal": 0o600,
                "backout.db.lock": 0o600,
            }
        finally:
            store.dispose()


def test_an_old_world_readable_store_is_made_private(in_tmp: Path) -> None:
    """A store an older backout left open to every local user (under umask 022) is closed
    on its next open, even by a read-only verb; a store shared with a group on purpose
    (nothing for others) keeps its mode, and folders that are not backout's are not
    changed."""
    assert invoke("snapshot", "plan.yaml").exit_code == 0
    folder = in_tmp / ".backout"
    folder.chmod(0o755)
    for name in ("backout.db", "backout.db.lock"):
        (folder / name).chmod(0o644)
    assert invoke("runs").exit_code == 0
    assert mode(folder) == 0o700
    assert {p.name: mode(p) for p in folder.iterdir()} == {
        "backout.db": 0o600,
        "backout.db.lock": 0o600,
    }
    (folder / "backout.db").chmod(0o660)
    assert invoke("runs").exit_code == 0
    assert mode(folder / "backout.db") == 0o660

    elsewhere = in_tmp / "shared"
    elsewhere.mkdir(mode=0o755)
    elsewhere.chmod(0o755)
    shutil.copy(folder / "backout.db", elsewhere / "b.db")
    (elsewhere / "b.db").chmod(0o644)
    assert invoke("--db", f"sqlite:///{elsewhere / 'b.db'}", "runs").exit_code == 0
    assert mode(elsewhere / "b.db") == 0o600
    assert mode(elsewhere) == 0o755  # not backout's folder
