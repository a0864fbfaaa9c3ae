"""API tokens on a real store, SQLite and PostgreSQL: made, listed, revoked, and checked
by `authenticate`; only their hash is kept; every change is audited; and `backout token`
says so at the terminal with the right exit codes."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner, Result

from backout import commands
from backout.cli import cli
from backout.commands import Caller
from backout.errors import Conflict, NotFound, Unauthenticated, UsageError
from backout.kernel.roles import Principal, Role
from backout.store.db import HEAD_REVISION, Store, _alembic_config
from backout.store.models import Base
from backout.store.tokens import TokenRow, add, touch

SECRET = re.compile(r"bo_[A-Za-z0-9_-]{40}")
DAY = 86400.0


@pytest.fixture
def admin(store_url: str) -> Iterator[Caller]:
    store = Store(store_url)
    try:
        yield Caller(store, "alice")
    finally:
        store.dispose()


def refusal(caller: Caller, secret: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as refused:
        commands.authenticate(caller, secret)
    return refused.value


def set_row(caller: Caller, token_id: int, **values: float | None) -> None:
    """Move a token's times (an expiry in the past, a last use long ago): no waiting."""
    with caller.store.session() as session:
        row = session.get(TokenRow, token_id)
        assert row is not None
        for name, value in values.items():
            setattr(row, name, value)


def row_of(caller: Caller, token_id: int) -> TokenRow:
    with caller.store.session(read_only=True) as session:
        row = session.get(TokenRow, token_id)
        assert row is not None
        return row


# --- the verbs -----------------------------------------------------------------------------


def test_a_token_is_made_listed_and_proves_who_it_is(admin: Caller) -> None:
    before = time.time()
    made = commands.create_token(admin, "operator", "ci-deploy", 30 * DAY, "deploy pipeline")
    assert SECRET.fullmatch(made.secret), made.secret
    assert (made.actor, made.role, made.name, made.created_by) == (
        "ci-deploy",
        "operator",
        "deploy pipeline",
        "alice",
    )
    assert made.prefix == made.secret[:10]
    assert made.expires_at is not None
    assert made.expires_at == pytest.approx(made.created_at + 30 * DAY)
    assert before <= made.created_at <= time.time()

    (listed,) = commands.list_tokens(admin)
    shown = listed.to_json()
    assert set(shown) == {
        "id",
        "name",
        "actor",
        "role",
        "prefix",
        "status",
        "created_at",
        "created_by",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "revoked_by",
        "revoke_reason",
    }
    assert made.secret not in json.dumps(shown)
    assert (listed.id, listed.status, listed.last_used_at) == (made.id, "active", None)

    who = commands.authenticate(admin, made.secret + "\n")  # as read from a file
    assert who == Principal("ci-deploy", Role.OPERATOR, made.id)
    (used,) = commands.list_tokens(admin)
    assert used.last_used_at is not None
    assert used.last_used_at >= made.created_at


def test_tokens_are_listed_newest_first_with_their_status(admin: Caller) -> None:
    old = commands.create_token(admin, Role.VIEWER, "grafana", None)
    gone = commands.create_token(admin, Role.ADMIN, "bob", DAY)
    late = commands.create_token(admin, Role.APPROVER, "cab", DAY)
    commands.revoke_token(admin, gone.id, "bob left")
    set_row(admin, late.id, expires_at=time.time() - 1)
    listed = commands.list_tokens(admin)
    assert [(t.id, t.status) for t in listed] == [
        (late.id, "expired"),
        (gone.id, "revoked"),
        (old.id, "active"),
    ]
    assert listed[2].expires_at is None
    assert (listed[1].revoked_by, listed[1].revoke_reason) == ("alice", "bob left")


def test_only_the_hash_is_stored(admin: Caller, store_url: str) -> None:
    made = commands.create_token(admin, "admin", "root-bot", DAY, "break glass")
    commands.revoke_token(admin, made.id, "tested")
    commands.authenticate(admin, commands.create_token(admin, "viewer", "v", DAY).secret)
    with admin.store.engine.connect() as conn:
        tokens = [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM api_tokens"))]
        audit = [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM audit"))]
    assert len(tokens) == 2
    assert len(audit) == 3
    dump = json.dumps([tokens, audit], default=str)
    assert made.secret not in dump
    assert made.secret[10:30] not in dump  # nor a piece past the shown prefix
    row = next(t for t in tokens if t["id"] == made.id)
    assert row["secret_hash"] == hashlib.sha256(made.secret.encode()).hexdigest()
    assert row["prefix"] == made.secret[:10]
    if admin.store.is_sqlite:  # nowhere in the files either, the write-ahead log included
        admin.store.dispose()
        folder = Path(store_url.removeprefix("sqlite:///")).parent
        for path in folder.iterdir():
            assert made.secret.encode() not in path.read_bytes(), path


def test_making_and_revoking_are_audited(admin: Caller) -> None:
    made = commands.create_token(admin, "approver", "cab", 7 * DAY, "change board")
    commands.revoke_token(admin, made.id, "the board meets elsewhere")
    created, revoked = commands.audit_log(admin, action="token.")
    assert (created.action, created.actor, created.subject) == (
        "token.created",
        "alice",
        f"token:{made.id}",
    )
    assert created.details == {
        "id": made.id,
        "actor": "cab",
        "role": "approver",
        "prefix": made.prefix,
        "name": "change board",
        "expires_at": made.expires_at,
    }
    assert (revoked.action, revoked.subject) == ("token.revoked", f"token:{made.id}")
    assert revoked.details["reason"] == "the board meets elsewhere"
    assert (revoked.details["actor"], revoked.details["role"]) == ("cab", "approver")
    assert commands.audit_verify(admin).ok


def test_a_revoked_token_is_refused(admin: Caller) -> None:
    made = commands.create_token(admin, "operator", "ci", DAY)
    commands.authenticate(admin, made.secret)
    summary = commands.revoke_token(admin, made.id, "  leaked in a build log  ")
    assert (summary.status, summary.revoke_reason, summary.revoked_by) == (
        "revoked",
        "leaked in a build log",
        "alice",
    )
    refused = refusal(admin, made.secret)
    assert refused.reason == "revoked"
    assert made.secret not in str(refused)
    assert made.prefix not in str(refused)


def test_an_expired_token_is_refused(admin: Caller) -> None:
    made = commands.create_token(admin, "viewer", "wall", 3600)
    assert commands.authenticate(admin, made.secret).actor == "wall"
    set_row(admin, made.id, expires_at=time.time() - 1)
    assert refusal(admin, made.secret).reason == "expired"
    (listed,) = commands.list_tokens(admin)
    assert listed.status == "expired"


def test_an_unknown_or_malformed_token_gets_the_same_answer(admin: Caller) -> None:
    made = commands.create_token(admin, "viewer", "wall", DAY)
    revoked = commands.create_token(admin, "viewer", "old", DAY)
    commands.revoke_token(admin, revoked.id, "old")
    expired = commands.create_token(admin, "viewer", "older", DAY)
    set_row(admin, expired.id, expires_at=time.time() - 1)
    unknown = "bo_" + made.secret[3:][::-1]  # well formed, never issued
    cases = {
        "unknown": refusal(admin, unknown),
        "malformed": refusal(admin, made.secret[:-1]),
        "revoked": refusal(admin, revoked.secret),
        "expired": refusal(admin, expired.secret),
    }
    assert {case: error.reason for case, error in cases.items()} == {c: c for c in cases}
    messages = {str(error) for error in cases.values()}
    assert len(messages) == 1, messages
    assert messages.pop().startswith("token refused: it is unknown, revoked or expired\nhint:")
    assert all(e.http_status == 401 and e.exit_code == 2 for e in cases.values())
    missing = refusal(admin, "  ")
    assert (missing.reason, missing.message) == ("missing", "no token given")


def test_the_last_use_is_written_at_most_once_a_minute(admin: Caller) -> None:
    made = commands.create_token(admin, "viewer", "wall", DAY)
    commands.authenticate(admin, made.secret)
    first = row_of(admin, made.id).last_used_at
    assert first is not None
    commands.authenticate(admin, made.secret)  # within the minute: not written again
    assert row_of(admin, made.id).last_used_at == first
    set_row(admin, made.id, last_used_at=first - 61)
    commands.authenticate(admin, made.secret)
    later = row_of(admin, made.id).last_used_at
    assert later is not None
    assert later >= first
    # one conditional UPDATE: of two requests at the same moment, one writes
    with admin.store.session() as session:
        assert touch(session, made.id, later + 120, 60.0)
        assert not touch(session, made.id, later + 121, 60.0)


def test_revoking_needs_a_reason_a_token_and_is_done_once(admin: Caller) -> None:
    made = commands.create_token(admin, "operator", "ci", DAY)
    with pytest.raises(UsageError, match="revoking a token needs a reason"):
        commands.revoke_token(admin, made.id, " ")
    with pytest.raises(NotFound, match="no token #99"):
        commands.revoke_token(admin, 99, "gone")
    commands.revoke_token(admin, made.id, "first")
    with pytest.raises(Conflict) as twice:
        commands.revoke_token(admin, made.id, "second")
    assert str(twice.value).startswith(
        f"token #{made.id} ({made.prefix}…) was already revoked by alice: first"
    )
    row = row_of(admin, made.id)
    assert (row.revoke_reason, row.revoked_by) == ("first", "alice")  # the first stands
    assert [r.action for r in commands.audit_log(admin, action="token.revoked")] == [
        "token.revoked"
    ]


@pytest.mark.parametrize(
    ("role", "actor", "expires", "name", "message"),
    [
        ("root", "ci", DAY, "", "unknown role 'root'"),
        ("viewer", "  ", DAY, "", "a token needs an actor"),
        ("viewer", "a\nb", DAY, "", "a token's actor must be one line"),
        ("viewer", "x" * 201, DAY, "", "a token's actor must be one line of at most 200"),
        ("viewer", "ci", DAY, "two\nlines", "a token's name must be one line"),
        ("viewer", "ci", 0.0, "", "a token's lifetime must be over 0s"),
        ("viewer", "ci", -5.0, "", "a token's lifetime must be over 0s"),
    ],
)
def test_a_bad_token_request_is_refused_and_makes_nothing(
    admin: Caller, role: str, actor: str, expires: float, name: str, message: str
) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        commands.create_token(admin, role, actor, expires, name)
    assert commands.list_tokens(admin) == []
    assert commands.audit_log(admin) == []


def test_the_migration_goes_up_and_down(store_url: str) -> None:
    store = Store(store_url)
    try:
        store.open()
        assert store.revision() == HEAD_REVISION
        with store.engine.connect() as conn:  # the table is as the model says
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert [d for d in diff if "api_tokens" in repr(d)] == []
        indexes = sa.inspect(store.engine).get_indexes("api_tokens")
        assert [(i["column_names"], bool(i["unique"])) for i in indexes] == [
            (["secret_hash"], True)
        ]
        config = _alembic_config()
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0011")
        assert "api_tokens" not in sa.inspect(store.engine).get_table_names()
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
        assert "api_tokens" in sa.inspect(store.engine).get_table_names()
    finally:
        store.dispose()


def test_two_tokens_never_share_a_hash(admin: Caller) -> None:
    made = commands.create_token(admin, "viewer", "wall", DAY)
    digest = hashlib.sha256(made.secret.encode()).hexdigest()
    copy = TokenRow(
        name="",
        actor="copy",
        role="admin",
        secret_hash=digest,
        prefix=made.prefix,
        created_at=0.0,
        created_by="x",
    )
    with pytest.raises(sa.exc.IntegrityError):
        add_row(admin, copy)
    assert len(commands.list_tokens(admin)) == 1


def add_row(caller: Caller, row: TokenRow) -> None:
    with caller.store.session() as session:
        add(session, row)


# --- the command line ----------------------------------------------------------------------


def invoke(url: str, *args: str) -> Result:
    return CliRunner().invoke(
        cli, ["--db", url, "--actor", "alice", *args], obj={}, env={"COLUMNS": "200"}
    )


def test_create_prints_the_token_alone_on_stdout_once(store_url: str) -> None:
    made = invoke(store_url, "token", "create", "--role", "Operator", "--actor", "ci-deploy")
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip()
    assert SECRET.fullmatch(secret), made.stdout
    assert re.fullmatch(
        r"token #1 acts as ci-deploy with role operator; expires "
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in 90d\):\n"
        r"warning: copy the token now: it is not shown again \(the store keeps only its "
        r"SHA-256\)\n",
        made.stderr,
    ), made.stderr
    listed = invoke(store_url, "token", "list")
    assert listed.exit_code == 0, listed.output
    assert secret not in listed.output
    assert f"{secret[:10]}…" in listed.output
    assert re.search(
        r"^\s*1\s+bo_\S+…\s+operator\s+active\s+ci-deploy\s+\d{4}-", listed.stdout, re.M
    )
    again = invoke(store_url, "token", "list", "--json")
    assert secret not in again.output


def test_create_never_and_the_json_shapes(store_url: str) -> None:
    made = invoke(
        store_url,
        "token",
        "create",
        "--role",
        "viewer",
        "--actor",
        "grafana",
        "--expires",
        "never",
        "--name",
        "wall",
        "--json",
    )
    assert made.exit_code == 0, made.output
    data = json.loads(made.stdout)
    assert set(data) == {
        "id",
        "secret",
        "name",
        "actor",
        "role",
        "prefix",
        "created_at",
        "created_by",
        "expires_at",
    }
    assert (data["role"], data["actor"], data["name"], data["expires_at"]) == (
        "viewer",
        "grafana",
        "wall",
        None,
    )
    assert data["created_by"] == "alice"
    text = invoke(
        store_url, "token", "create", "--role", "admin", "--actor", "x", "--expires", "never"
    )
    assert "never expires (revoke it with `backout token revoke`)" in text.stderr
    revoked = invoke(store_url, "token", "revoke", "1", "--reason", "wall removed", "--json")
    assert revoked.exit_code == 0, revoked.output
    summary = json.loads(revoked.stdout)
    assert (summary["id"], summary["status"], summary["revoke_reason"]) == (
        1,
        "revoked",
        "wall removed",
    )
    assert "secret" not in summary
    assert [t["id"] for t in json.loads(invoke(store_url, "token", "list", "--json").stdout)] == [
        2,
        1,
    ]


def test_revoke_at_the_terminal(store_url: str) -> None:
    invoke(store_url, "token", "create", "--role", "operator", "--actor", "ci", "--expires", "12h")
    done = invoke(store_url, "token", "revoke", "1", "--reason", "rotated")
    assert done.exit_code == 0, done.output
    assert re.fullmatch(
        r"token #1 \(bo_\S{7}…, ci, operator\) revoked: it is refused from now on\n", done.stdout
    )
    twice = invoke(store_url, "token", "revoke", "1", "--reason", "again")
    assert twice.exit_code == 2
    assert re.match(
        r"error: token #1 \(bo_\S{7}…\) was already revoked by alice: rotated", twice.stderr
    )
    listed = invoke(store_url, "token", "list").stdout
    assert re.search(r"^\s*1\s+bo_\S+…\s+operator\s+revoked\s+ci\s", listed, re.M), listed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["create", "--role", "root", "--actor", "x"],
            "Invalid value for '--role': 'root' is not one of",
        ),
        (["create", "--role", "viewer"], "Missing option '--actor'"),
        (
            ["create", "--role", "viewer", "--actor", "x", "--expires", "3y"],
            "'3y' is not a lifetime",
        ),
        (["create", "--role", "viewer", "--actor", " "], "error: a token needs an actor"),
        (["revoke", "1"], "error: revoking a token needs a reason"),
        (
            ["revoke", "7", "--reason", "x"],
            "error: no token #7\nhint: `backout token list` shows them",
        ),
        (
            ["revoke", "one", "--reason", "x"],
            "Invalid value for 'ID': 'one' is not a valid integer",
        ),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    store_url: str, args: list[str], message: str
) -> None:
    result = invoke(store_url, "token", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.output


def test_list_without_a_store_creates_none(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'none' / 'backout.db'}"
    result = invoke(url, "token", "list")
    assert result.exit_code == 2
    assert "no store at" in result.stderr
    assert not (tmp_path / "none").exists()


def test_an_empty_list_says_how_to_make_one(store_url: str) -> None:
    Store(store_url).open().dispose()
    result = invoke(store_url, "token", "list")
    assert result.exit_code == 0
    assert result.stdout == "no tokens; make one with `backout token create`\n"
    assert json.loads(invoke(store_url, "token", "list", "--json").stdout) == []
