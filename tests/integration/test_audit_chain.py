"""The audit chain on SQLite and PostgreSQL: tampering through raw SQL (edit, delete, insert,
swap) is found and the first bad record named; checkpoints prove the log still extends them."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from backout.store import audit
from backout.store.db import Store, open_store
from tests.integration.change_helpers import PLAN, audit_records, create_change, invoke, write

RECORDS = 8


def _fill(url: str, count: int = RECORDS, first: int = 1) -> None:
    store = open_store(url)
    try:
        for n in range(first, first + count):
            with store.session() as session:  # one transaction per record, like real writers
                audit.append(
                    session,
                    "alice" if n % 2 else "bob",
                    "change.approved" if n % 3 else "run.finished",
                    f"change:{n}",
                    {"n": n, "comment": f"record {n}", "ratio": n / 7},
                )
    finally:
        store.dispose()


def _sql(url: str, *statements: tuple[str, dict[str, Any]]) -> None:
    store = Store(url)  # raw SQL, as someone with database access would
    try:
        with store.engine.begin() as conn:
            for statement, params in statements:
                conn.execute(text(statement), params)
    finally:
        store.dispose()


def _json(url: str) -> str:
    # a JSON literal for the details column, spelled the way each database takes it
    return "CAST(:d AS json)" if url.startswith("postgres") else ":d"


def _verify(url: str, *args: str, human: bool = True) -> tuple[int, dict[str, Any], str]:
    result = invoke(url, "audit", "verify", *args, "--json")
    assert "Traceback" not in result.output
    if not human:
        return result.exit_code, json.loads(result.stdout), ""
    text = invoke(url, "audit", "verify", *args)
    assert text.exit_code == result.exit_code
    assert "Traceback" not in text.output
    return result.exit_code, json.loads(result.stdout), text.output


def _edit(url: str) -> None:
    _sql(
        url,
        (
            f"UPDATE audit SET details = {_json(url)} WHERE seq = 4",
            {"d": json.dumps({"n": 4, "comment": "nothing to see", "ratio": 4 / 7})},
        ),
    )


def _edit_actor(url: str) -> None:
    _sql(url, ("UPDATE audit SET actor = 'mallory' WHERE seq = 4", {}))


def _delete(url: str) -> None:
    _sql(url, ("DELETE FROM audit WHERE seq = 4", {}))


def _insert_naive(url: str) -> None:
    """A forged record appended at the end, with a made-up hash."""
    _sql(
        url,
        (
            "INSERT INTO audit (seq, at, actor, action, subject, details, prev_hash, hash) "
            f"VALUES (:seq, :at, 'mallory', 'change.approved', 'change:1', {_json(url)}, :p, :h)",
            {"seq": RECORDS + 1, "at": time.time(), "d": "{}", "p": "0" * 64, "h": "f" * 64},
        ),
    )


def _insert_linked(url: str) -> None:
    """A forger who knows the formula: room is made at seq 4 and the forged record links
    correctly to record 3. The chain still breaks at the record after it."""
    store = open_store(url)
    try:
        with store.session() as session:
            third = next(row for row in audit.log(session, limit=100) if row.seq == 3)
            forged = {
                "seq": 4,
                "at": third.at + 0.001,
                "actor": "mallory",
                "action": "change.approved",
                "subject": "change:1",
                "details": {},
            }
            digest = audit.link_hash(third.hash, forged)
    finally:
        store.dispose()
    _sql(
        url,
        ("UPDATE audit SET seq = seq + 1000 WHERE seq >= 4", {}),
        ("UPDATE audit SET seq = seq - 999 WHERE seq >= 1004", {}),
        (
            "INSERT INTO audit (seq, at, actor, action, subject, details, prev_hash, hash) "
            f"VALUES (4, :at, 'mallory', 'change.approved', 'change:1', {_json(url)}, :p, :h)",
            {"at": forged["at"], "d": "{}", "p": third.hash, "h": digest},
        ),
    )


def _swap_contents(url: str) -> None:
    """Records 3 and 6 trade actor and details (each keeps its own seq and hashes)."""
    detail = "CAST(:d{n} AS json)" if url.startswith("postgres") else ":d{n}"
    store = open_store(url)
    try:
        with store.session() as session:
            rows = {r.seq: r for r in audit.log(session, limit=100)}
    finally:
        store.dispose()
    a, b = rows[3], rows[6]
    _sql(
        url,
        (
            f"UPDATE audit SET actor = :a1, details = {detail.format(n=1)} WHERE seq = 3",
            {"a1": b.actor, "d1": json.dumps(b.details)},
        ),
        (
            f"UPDATE audit SET actor = :a2, details = {detail.format(n=2)} WHERE seq = 6",
            {"a2": a.actor, "d2": json.dumps(a.details)},
        ),
    )


def _swap_order(url: str) -> None:
    """Records 3 and 6 trade places in the sequence (seq is unique: go through a spare)."""
    _sql(
        url,
        ("UPDATE audit SET seq = -1 WHERE seq = 3", {}),
        ("UPDATE audit SET seq = 3 WHERE seq = 6", {}),
        ("UPDATE audit SET seq = 6 WHERE seq = -1", {}),
    )


TAMPER: dict[str, tuple[Callable[[str], None], int, str]] = {
    "edit-details": (_edit, 4, "record 4 was edited or forged"),
    "edit-actor": (_edit_actor, 4, "record 4 was edited or forged"),
    "delete": (_delete, 4, "record 4 is missing (deleted); the chain jumps from 3 to 5"),
    "insert-naive": (_insert_naive, RECORDS + 1, f"record {RECORDS + 1} does not follow"),
    "insert-linked": (_insert_linked, 5, "record 5 does not follow record 4"),
    "swap-contents": (_swap_contents, 3, "record 3 was edited or forged"),
    "swap-order": (_swap_order, 3, "record 3 does not follow record 2"),
}


def test_tampering_is_found_and_named(store_url: str) -> None:
    # one store, emptied between cases: a database per case would cost more than the cases
    open_store(store_url).dispose()  # create the tables
    for case, (tamper, bad_seq, message) in TAMPER.items():
        _sql(store_url, ("DELETE FROM audit", {}))
        _fill(store_url)
        code, before, _ = _verify(store_url, human=False)
        assert (code, before["ok"], before["records"]) == (0, True, RECORDS), case
        tamper(store_url)
        code, report, human = _verify(store_url)
        assert code == 1, case
        assert report["ok"] is False, case
        assert report["bad_seq"] == bad_seq, (case, report)
        assert message in report["problem"], (case, report)
        assert report["records"] == bad_seq - 1, case  # the records before it still verify
        assert "audit chain broken" in human, case
        assert message in human, case


def test_the_first_bad_record_is_named(store_url: str) -> None:
    _fill(store_url)
    _sql(store_url, ("UPDATE audit SET actor = 'mallory' WHERE seq = 6", {}))
    _delete(store_url)  # seq 4: earlier than the edit
    code, report, _ = _verify(store_url)
    assert (code, report["bad_seq"]) == (1, 4)


def test_an_untouched_log_verifies(store_url: str, tmp_path: Path) -> None:
    open_store(store_url).dispose()  # a store with no records yet
    code, report, human = _verify(store_url)  # empty
    assert (code, report["ok"], report["records"], report["head_hash"]) == (
        0,
        True,
        0,
        audit.GENESIS,
    )
    # real mutations through the CLI, then direct appends
    plan = write(tmp_path / "plan.yaml", PLAN)
    change_id = create_change(store_url, plan, "--risk", "low")
    assert invoke(store_url, "change", "approve", str(change_id), actor="bob").exit_code == 0
    assert invoke(store_url, "run", plan, "--change", str(change_id), actor="bob").exit_code == 0
    _fill(store_url, 3)
    code, report, human = _verify(store_url)
    records = audit_records(store_url)
    assert code == 0
    assert report == {
        "ok": True,
        "records": len(records),
        "head_hash": records[-1]["hash"],
        "bad_seq": None,
        "problem": "",
    }
    assert f"audit chain intact: {len(records)} records, head {records[-1]['hash']}" in human
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    for previous, record in itertools.pairwise(records):
        assert record["prev_hash"] == previous["hash"]
    assert {r["action"] for r in records} >= {
        "change.created",
        "change.approved",
        "change.transitioned",
        "run.started",
        "run.finished",
    }


def test_each_hash_is_the_documented_formula(store_url: str) -> None:
    _fill(store_url, 3)
    prev = audit.GENESIS
    for record in audit_records(store_url):
        body = {k: record[k] for k in ("seq", "at", "actor", "action", "subject", "details")}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert record["hash"] == hashlib.sha256((prev + canonical).encode()).hexdigest()
        assert record["prev_hash"] == prev
        prev = record["hash"]


def test_checkpoint_then_verify_against(store_url: str) -> None:
    open_store(store_url).dispose()  # a store with no records yet
    empty = json.loads(invoke(store_url, "audit", "checkpoint", "--json").stdout)
    assert empty == {"seq": 0, "hash": audit.GENESIS, "at": None}
    assert _verify(store_url, "--against", audit.GENESIS)[0] == 0  # an empty log's checkpoint
    _fill(store_url, 5)
    result = invoke(store_url, "audit", "checkpoint")
    assert result.exit_code == 0
    checkpoint = result.stdout.split()[0]
    assert len(checkpoint) == 64
    assert "(record 5," in result.stdout
    _fill(store_url, 3, first=6)  # the log grows after the checkpoint
    code, report, human = _verify(store_url, "--against", checkpoint.upper())
    assert (code, report["ok"], report["records"]) == (0, True, 8)
    assert f"extends checkpoint {checkpoint}" in human
    assert _verify(store_url, "--against", audit.GENESIS)[0] == 0

    _sql(store_url, ("DELETE FROM audit WHERE seq >= 5", {}))  # truncate the tail
    code, report, _ = _verify(store_url)
    assert code == 0  # a shorter chain is still a chain: only a checkpoint can tell
    code, report, human = _verify(store_url, "--against", checkpoint)
    assert code == 1
    assert f"checkpoint {checkpoint} is not in this chain" in report["problem"]
    assert "truncated" in human
    assert _verify(store_url, "--against", "ab" * 32)[0] == 1


@pytest.mark.parametrize(
    ("against", "message"),
    [
        ("", "--against is empty: expected a checkpoint hash (64 hex digits)"),
        ("  \n", "--against is empty"),
        ("0d06b7ab", "--against '0d06b7ab' is not a checkpoint hash: expected 64 hex digits"),
        ("g" * 64, "is not a checkpoint hash"),
        ("ab" * 32 + "  (record 5, 2026-11-26T11:30+00:00)", "is not a checkpoint hash"),
    ],
)
def test_a_checkpoint_that_is_not_a_hash_is_bad_input(
    store_url: str, against: str, message: str
) -> None:
    """An empty checkpoint file (the nightly job's `$(cat checkpoint.txt)`) or a mistyped
    hash must not pass as "intact", nor read as "broken": it is bad input, exit 2."""
    _fill(store_url, 4)
    _sql(store_url, ("DELETE FROM audit WHERE seq >= 3", {}))  # the tail was cut
    for args in (["--against", against], ["--against", against, "--json"]):
        result = invoke(store_url, "audit", "verify", *args)
        assert result.exit_code == 2, result.output
        assert message in result.stderr
        assert "hint: " in result.stderr
        assert "intact" not in result.output
        assert "Traceback" not in result.output
        assert result.stdout == ""


def test_the_documented_nightly_job_fails_loudly(store_url: str, tmp_path: Path) -> None:
    """docs/audit.md's nightly job, run by a real shell: with an empty checkpoint file it
    fails and keeps the file as it was; on a good one it verifies and moves it on."""
    script = _nightly_job_script()
    _fill(store_url, 3)
    env = {**os.environ, "BACKOUT_DATABASE_URL": store_url, "PATH": _path_with_backout()}
    checkpoint = tmp_path / "checkpoint.txt"
    checkpoint.write_text("")
    failed = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert failed.returncode == 2, failed.stderr
    assert "--against is empty" in failed.stderr
    assert checkpoint.read_text() == ""  # nothing was overwritten
    first = invoke(store_url, "audit", "checkpoint").stdout.split()[0]
    checkpoint.write_text(first + "\n")
    _fill(store_url, 2, first=4)
    ok = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert f"extends checkpoint {first}" in ok.stdout
    head = invoke(store_url, "audit", "checkpoint").stdout.split()[0]
    assert checkpoint.read_text().strip() == head != first


def _nightly_job_script() -> str:
    doc = (Path(__file__).parents[2] / "docs" / "audit.md").read_text(encoding="utf-8")
    section = doc.split("A nightly job that verifies against", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def _path_with_backout() -> str:
    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def test_log_filters(store_url: str) -> None:
    _fill(store_url, 6)
    every = audit_records(store_url)
    assert [r["seq"] for r in every] == [1, 2, 3, 4, 5, 6]
    assert [r["seq"] for r in audit_records(store_url, "--action", "run.")] == [3, 6]
    assert [r["seq"] for r in audit_records(store_url, "--action", "run_")] == []  # not a wildcard
    assert [r["seq"] for r in audit_records(store_url, "--by", "bob")] == [2, 4, 6]
    assert [r["seq"] for r in audit_records(store_url, "--subject", "change:5")] == [5]
    assert [r["seq"] for r in audit_records(store_url, "--limit", "2")] == [5, 6]
    assert audit_records(store_url, "--since", "2999-01-01T00:00") == []
    assert len(audit_records(store_url, "--since", "2000-01-01")) == 6
    human = invoke(store_url, "audit", "log", "--by", "alice")
    assert human.exit_code == 0
    assert "change.approved" in human.stdout
    assert "bob" not in human.stdout
    bad = invoke(store_url, "audit", "log", "--since", "yesterday")
    assert bad.exit_code == 2
    assert "'yesterday' is not a date and time" in bad.stderr


def test_details_are_plain_json_with_secrets_masked(store_url: str) -> None:
    store = open_store(store_url)
    try:
        with store.session() as session:
            audit.append(
                session,
                "alice",
                "manual.note",
                "service:web",
                {
                    "steps": (1, 2),  # a tuple is stored as the list it reads back as
                    "by_step": {1: "ok"},  # an int key is stored as the string it reads back as
                    "api_token": "s3cr3t-value",
                    "nested": {"password": "hunter22", "user": "bob"},
                    "store": "postgresql://backout:hunter22@db:5432/backout",
                    "path": Path("/etc/app.conf"),
                },
            )
    finally:
        store.dispose()
    assert _verify(store_url)[0] == 0
    details = audit_records(store_url)[0]["details"]
    assert details == {
        "steps": [1, 2],
        "by_step": {"1": "ok"},
        "api_token": "***",
        "nested": {"password": "***", "user": "bob"},
        "store": "postgresql://backout:***@db:5432/backout",
        "path": "/etc/app.conf",
    }
    assert "hunter22" not in invoke(store_url, "audit", "log").stdout


def test_records_appended_in_one_transaction_follow_each_other(store_url: str) -> None:
    """The second record of a transaction links to the first without reading the chain
    again (the lock is held), and a savepoint rolled back leaves no link behind."""
    _fill(store_url, 2)
    store = open_store(store_url)
    heads: list[str] = []

    def count_heads(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT AUDIT.SEQ, AUDIT.HASH"):
            heads.append(statement)

    try:
        event.listen(store.engine, "before_cursor_execute", count_heads)
        with store.session() as session:
            audit.append(session, "ops", "test.one", "t:1", {})
            audit.append(session, "ops", "test.two", "t:2", {})
            assert len(heads) == 1  # the first append read the chain's end; the second did not
            try:
                with session.begin_nested():
                    audit.append(session, "ops", "test.gone", "t:x", {})
                    raise RuntimeError("roll the savepoint back")
            except RuntimeError:
                pass
            audit.append(session, "ops", "test.three", "t:3", {})
        with store.session() as session:
            audit.append(session, "ops", "test.four", "t:4", {})
        with store.session(read_only=True) as session:
            verified = audit.verify(session)
            rows = audit.log(session)
    finally:
        event.remove(store.engine, "before_cursor_execute", count_heads)
        store.dispose()
    assert verified.ok, verified.problem
    assert [r.seq for r in sorted(rows, key=lambda r: r.seq)] == list(range(1, 7))
    actions = [r.action for r in sorted(rows, key=lambda r: r.seq)][2:]
    assert actions == ["test.one", "test.two", "test.three", "test.four"]
