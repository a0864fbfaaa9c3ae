"""The engine's promise around a template that cannot render, and around a stop: on a real
store (SQLite and PostgreSQL), with real processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

from backout import commands
from backout.settings import Settings
from backout.stop import STOP, Stopped
from tests.callers import caller


def settings(url: str) -> Settings:
    return Settings(database_url=url, actor="tester", lease_ttl=5.0)


def write(folder: Path, body: str) -> Path:
    path = folder / "plan.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def test_a_template_error_fails_the_step_before_anything_starts(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BACKOUT_TEST_NEVER_SET", raising=False)
    plan = write(
        tmp_path,
        """
        plan: p
        steps:
          - name: first
            run: [sh, -c, 'echo first >> out.txt']
          - name: shard count
            run: [sh, -c, 'echo "$0" >> out.txt', "{{ env.BACKOUT_TEST_NEVER_SET }}"]
          - name: never
            run: [sh, -c, 'echo never >> out.txt']
        """,
    )
    report = commands.run(caller(settings(store_url)), plan)
    assert report.status == "failed"
    assert "step 2 'shard count' failed: not started: template" in report.message
    assert "BACKOUT_TEST_NEVER_SET" in report.message
    assert (tmp_path / "out.txt").read_text() == "first\n"
    events = commands.journal(caller(settings(store_url)), report.run_id)
    on_step_2 = [(e.kind, e.data.get("started")) for e in events if e.step == 1]
    assert on_step_2 == [("step_finished", False)]  # one event: nothing ever started
    assert report.steps[2].status == "not_run"  # the run is over: it never will run


def test_a_stop_at_a_safe_point_is_journalled_and_leaves_the_step_to_resume(
    store_url: str, tmp_path: Path
) -> None:
    """A stop requested while a step runs (drained: nothing is killed) ends the run at the
    next step boundary, journalled as stopped; resume then carries on."""
    plan = write(
        tmp_path,
        """
        plan: p
        steps:
          - name: first
            run: [sh, -c, 'echo first >> out.txt']
          - name: second
            run: [sh, -c, 'echo second >> out.txt']
        """,
    )
    observed: list[str] = []

    def stop_after_first(event, view) -> None:  # type: ignore[no-untyped-def]
        observed.append(event.kind)
        if event.kind == "step_process" and event.step == 0:  # the step is about to run
            STOP.request(15)

    try:
        with pytest.raises(Stopped) as caught:
            commands.run(caller(settings(store_url)), plan, observer=stop_after_first)
    finally:
        STOP.reset()
    run_id = caught.value.run_id
    assert run_id is not None
    events = commands.journal(caller(settings(store_url)), run_id)
    assert events[-1].kind == "run_stopped"
    assert events[-1].step is None
    assert events[-1].data["steps_stopped"] is True
    assert f"backout resume {run_id}" in events[-1].data["message"]
    assert (tmp_path / "out.txt").read_text() == "first\n"
    report = commands.resume(caller(settings(store_url)), run_id)
    assert report.status == "succeeded"
    assert (tmp_path / "out.txt").read_text() == "first\nsecond\n"


def test_a_store_lost_mid_run_names_the_run_and_how_to_resume(
    postgres_url: str, tmp_path: Path
) -> None:
    """PostgreSQL only: step 1 takes the run's schema away (as a failover or a dropped
    connection would take the store), so its end cannot be journalled."""
    schema = postgres_url.rsplit("%3D", 1)[1]
    database = postgres_url.split("?", 1)[0]
    move = (
        "import psycopg, sys; "
        "psycopg.connect(sys.argv[1], autocommit=True).execute("
        "f'ALTER SCHEMA {sys.argv[2]} RENAME TO {sys.argv[2]}_away')"
    )
    plan = write(
        tmp_path,
        f"""
        plan: p
        steps:
          - name: the store goes away
            run: [sh, -c, '[ -e moved ] || {{ touch moved; "$0" -c "$1" "$2" "$3"; }}',
                  {sys.executable}, "{move}", "{database}", "{schema}"]
            idempotent: true
          - name: after
            run: [sh, -c, 'echo after >> out.txt']
        """,
    )
    result = subprocess.run(
        [sys.executable, "-m", "backout", "--db", postgres_url, "run", str(plan)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "lost the store in the middle of the run" in result.stderr
    assert "Traceback" not in result.stderr
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"ALTER SCHEMA {schema}_away RENAME TO {schema}")
    run_id = commands.runs(caller(settings(postgres_url)))[0].run_id
    assert f"[run {run_id}]" in result.stderr
    assert f"backout resume {run_id}" in result.stderr
    report = commands.resume(caller(settings(postgres_url)), run_id)
    assert report.status == "succeeded"
    assert (tmp_path / "out.txt").read_text() == "after\n"
