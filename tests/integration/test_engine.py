"""The engine on a real store (SQLite and PostgreSQL): runs, failures, retries, verification,
transition rules, snapshots, redaction. Steps are real processes and real files."""

from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from backout import commands
from backout.engine.journal import Journal
from backout.engine.runner import empty_view, plan_of
from backout.errors import ServiceBusyError, TransitionError, UsageError
from backout.redact import Redactor
from backout.settings import Settings
from backout.store import repo
from backout.store.db import open_store
from tests.callers import caller


def write_plan(folder: Path, body: str, name: str = "plan.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


def settings(url: str) -> Settings:
    return Settings(database_url=url, actor="tester", lease_ttl=5.0)


def journal_kinds(url: str, run_id: str) -> list[str]:
    return [e.kind for e in commands.journal(caller(settings(url)), run_id)]


def test_run_succeeds_and_journal_is_contiguous(store_url: str, tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path,
        """
        plan: p
        steps:
          - name: one
            run: [sh, -c, 'echo one >> out.txt']
          - name: two
            run: [sh, -c, 'echo two >> out.txt']
        verify:
          - name: both ran
            command: [grep, -q, two, out.txt]
    """,
    )
    report = commands.run(caller(settings(store_url)), plan)
    assert report.status == "succeeded"
    assert report.exit_code == 0
    assert report.verified
    assert (tmp_path / "out.txt").read_text() == "one\ntwo\n"
    events = commands.journal(caller(settings(store_url)), report.run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.kind for e in events] == [
        "run_created",
        "run_started",
        "step_started",
        "step_process",  # the step's process group, journalled before its program runs
        "step_finished",
        "step_started",
        "step_process",
        "step_finished",
        "verify_started",
        "check_started",
        "check_finished",
        "run_finished",
    ]
    listed = commands.runs(caller(settings(store_url)))
    assert listed[0].run_id == report.run_id
    assert listed[0].status == "succeeded"  # projection agrees with the journal


def test_failed_step_stops_the_run(store_url: str, tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path,
        """
        plan: p
        steps:
          - name: breaks
            run: [sh, -c, 'echo boom; exit 3']
          - name: never
            run: [touch, never.txt]
    """,
    )
    report = commands.run(caller(settings(store_url)), plan)
    assert report.status == "failed"
    assert report.exit_code == 1
    assert [s.status for s in report.steps] == ["failed", "not_run"]
    assert "step 1 'breaks' failed: exit code 3" in report.message
    assert "boom" in report.steps[0].output
    assert not (tmp_path / "never.txt").exists()


def test_on_failure_continue_goes_on(store_url: str, tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path,
        """
        plan: p
        steps:
          - name: optional cleanup
            run: ['false']
            on_failure: continue
          - name: main
            run: [touch, main.txt]
    """,
    )
    report = commands.run(caller(settings(store_url)), plan)
    assert [s.status for s in report.steps] == ["failed", "succeeded"]
    assert report.status == "succeeded"
    assert (tmp_path / "main.txt").exists()


def test_retries_with_backoff_until_success(store_url: str, tmp_path: Path) -> None:
    # fails on the first two attempts, succeeds on the third
    plan = write_plan(
        tmp_path,
        """
        plan: p
        steps:
          - name: flaky
            run: [sh, -c, 'echo x >> tries; test $(wc -l < tries) -ge 3']
            retries: 3
            retry_delay: 100ms
            idempotent: true
    """,
    )
    started = time.monotonic()
    report = commands.run(caller(settings(store_url)), plan)
    assert report.status == "succeeded"
    assert report.steps[0].attempts == 3
    assert journal_kinds(store_url, report.run_id).count("step_retrying") == 2
    assert time.monotonic() - started >= 0.3  # 100 ms, then 200 ms: the backoff doubles


def test_retries_exhausted_fail(store_url: str, tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path,
        """
        plan: p
        steps:
          - name: always fails
            run: ['false']
            retries: 1
            retry_delay: 10ms
            idempotent: true
    """,
    )
    report = commands.run(caller(settings(store_url)), plan)
    assert report.status == "failed"
    assert report.steps[0].attempts == 2


def test_step_timeout_fails_the_step(store_url: str, tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path,
        """
        plan: p
        steps:
          - name: hangs
            run: [sleep, '30']
            timeout: 300ms
    """,
    )
    started = time.monotonic()
    report = commands.run(caller(settings(store_url)), plan)
    assert time.monotonic() - started < 10
    assert report.status == "failed"
    assert "timed out after 0.3s" in report.steps[0].summary


def test_verification_failure_names_the_check(store_url: str, tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path,
        """
        plan: p
        steps:
          - name: nothing
            run: ['true']
        verify:
          - name: config restored
            command: [test, -f, restored.conf]
    """,
    )
    report = commands.run(caller(settings(store_url)), plan)
    assert report.status == "failed"
    assert report.exit_code == 1
    assert not report.verified
    assert "verification failed: 'config restored'" in report.message
    assert report.checks[0].passed is False


def test_verify_within_retries_until_it_passes(store_url: str, tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path,
        """
        plan: p
        steps:
          - name: nothing
            run: ['true']
        verify:
          - name: appears on the second look
            command: [sh, -c, '[ -e looked ] || { touch looked; exit 1; }']
            within: 30s
            interval: 100ms
    """,
    )
    report = commands.run(caller(settings(store_url)), plan)
    assert report.status == "succeeded"
    assert report.checks[0].attempts == 2


def test_baseline_snapshot_is_used_and_required(store_url: str, tmp_path: Path) -> None:
    (tmp_path / "releases" / "v1").mkdir(parents=True)
    (tmp_path / "releases" / "v2").mkdir()
    (tmp_path / "releases" / "current").symlink_to("v1")
    plan = write_plan(
        tmp_path,
        """
        plan: p
        service: svc
        baseline:
          release: {readlink: releases/current}
        steps:
          - name: back
            symlink: {link: releases/current, target: "{{ baseline.release }}"}
        verify:
          - name: release restored
            command: [test, "{{ baseline.release }}", "=", v1]
    """,
    )
    with pytest.raises(UsageError, match="no baseline snapshot for service 'svc'"):
        commands.run(caller(settings(store_url)), plan)
    assert commands.runs(caller(settings(store_url))) == []  # a refused run leaves nothing behind
    snap = commands.snapshot(caller(settings(store_url)), plan)
    assert snap.values == {"release": "v1"}
    (tmp_path / "releases" / "current").unlink()
    (tmp_path / "releases" / "current").symlink_to("v2")  # the bad deploy
    report = commands.run(caller(settings(store_url)), plan)
    assert report.status == "succeeded"
    assert (tmp_path / "releases" / "current").readlink() == Path("v1")


def test_secrets_never_reach_the_store(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "hunter2-very-secret"
    monkeypatch.setenv("API_TOKEN", secret)
    plan = write_plan(
        tmp_path,
        """
        plan: p
        secrets:
          token: {env: API_TOKEN}
        steps:
          - name: leaks in argv
            run: [echo, "token={{ secrets.token }}"]
          - name: leaks base64 from the shell
            shell: printf '%s' "$BACKOUT_SECRET_TOKEN" | base64; exit 1
    """,
    )
    report = commands.run(caller(settings(store_url)), plan)
    assert report.steps[0].output.strip() == "token=***"
    store = open_store(store_url)
    with store.engine.connect() as conn:
        dump = " ".join(str(row) for row in conn.execute(text("SELECT * FROM journal")))
        dump += " ".join(str(row) for row in conn.execute(text("SELECT * FROM runs")))
    store.dispose()
    assert secret not in dump
    assert "aHVudGVyMi12ZXJ5LXNlY3JldA" not in dump  # base64 of the secret
    assert "***" in dump


def test_missing_secret_refuses_before_anything_runs(store_url: str, tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path,
        """
        plan: p
        secrets:
          token: {env: BACKOUT_TEST_UNSET_VARIABLE}
        steps:
          - name: one
            run: [touch, ran.txt]
    """,
    )
    with pytest.raises(UsageError, match="BACKOUT_TEST_UNSET_VARIABLE is not set"):
        commands.run(caller(settings(store_url)), plan)
    assert not (tmp_path / "ran.txt").exists()


def test_forbidden_transitions_are_errors(store_url: str, tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path,
        """
        plan: p
        steps:
          - name: one
            run: ['true']
    """,
    )
    report = commands.run(caller(settings(store_url)), plan)
    store = open_store(store_url)
    with store.session() as session:
        row = repo.get_run(session, report.run_id)
    parsed, _ = plan_of(row)
    journal = Journal.open(store, empty_view(row, parsed), Redactor())
    with pytest.raises(TransitionError, match="a run cannot go from succeeded to running"):
        journal.append("run_resumed")
    with pytest.raises(TransitionError, match="a step cannot go from succeeded to running"):
        journal.append("step_started", step=0, attempt=2)
    store.dispose()
    assert (
        len(commands.journal(caller(settings(store_url)), report.run_id)) == journal.view.last_seq
    )


def test_resume_of_a_finished_run_runs_nothing(store_url: str, tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path,
        """
        plan: p
        steps:
          - name: one
            run: [sh, -c, 'echo x >> count']
    """,
    )
    report = commands.run(caller(settings(store_url)), plan)
    again = commands.resume(caller(settings(store_url)), report.run_id)
    assert again.status == "succeeded"
    assert (tmp_path / "count").read_text() == "x\n"


def test_unknown_run_id_is_a_usage_error(store_url: str) -> None:
    open_store(store_url).dispose()
    with pytest.raises(UsageError, match="no run 'nope'"):
        commands.status(caller(settings(store_url)), "nope")


def test_second_run_of_a_service_is_refused_while_one_is_unfinished(
    store_url: str, tmp_path: Path
) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    hold = 'touch "$0"; until [ -e "$1" ]; do sleep 0.02; done'  # runs until released
    plan = write_plan(
        tmp_path,
        f"""
        plan: p
        service: shop
        steps:
          - name: slow
            run: [sh, -c, '{hold}', '{started}', '{release}']
    """,
    )
    first: dict[str, object] = {}
    thread = threading.Thread(
        target=lambda: first.update(r=commands.run(caller(settings(store_url)), plan))
    )
    thread.start()
    try:
        # the first run's step is running: its run holds the service
        deadline = time.monotonic() + 30
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert started.exists(), "the first run's step never started"
        with pytest.raises(ServiceBusyError, match="service 'shop'"):
            commands.run(caller(settings(store_url)), plan)
    finally:
        release.touch()
        thread.join()
    assert first["r"].status == "succeeded"
    assert len(commands.runs(caller(settings(store_url)))) == 1
    # once it is finished, the service is free again
    assert commands.run(caller(settings(store_url)), plan).status == "succeeded"
