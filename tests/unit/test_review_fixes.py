"""Behaviour fixed after review: daemons started by a step, secrets with one source,
one-number http status, waits longer than their timeout, unusable URLs, Ctrl-C cleanup."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from backout import proc
from backout.actions.http import HttpAction, HttpOptions
from backout.commands import validate
from backout.errors import PlanError
from backout.kernel.options import Context
from backout.plans import load_plan
from backout.probes.http import HttpCheck, HttpCheckOptions
from backout.stop import Stopped


def test_a_step_that_starts_a_daemon_ends_when_the_step_process_exits(tmp_path: Path) -> None:
    started = time.monotonic()
    result = proc.run_process(
        ["sh", "-c", "sleep 30 & echo $! > daemon.pid; echo started"], cwd=tmp_path, timeout=10
    )
    took = time.monotonic() - started
    daemon = int((tmp_path / "daemon.pid").read_text())
    try:
        assert result.exit_code == 0
        assert not result.timed_out
        assert result.output.strip() == "started"
        # the daemon lives 30 s: well under that means the step did not wait for it
        assert took < 20, f"waited {took:.1f}s for a daemon holding the output open"
        os.kill(daemon, 0)  # the daemon the step started is left running, as intended
    finally:
        os.kill(daemon, signal.SIGKILL)


def test_stop_all_stops_running_steps_and_says_so(tmp_path: Path) -> None:
    """A stop kills the step's group, and the caller sees Stopped, not a failed step."""
    outcome: list[BaseException] = []

    def step() -> None:
        try:
            proc.run_process(["sleep", "30"], cwd=tmp_path, timeout=60)
        except Stopped as exc:
            outcome.append(exc)

    thread = threading.Thread(target=step)
    thread.start()
    deadline = time.monotonic() + 30
    while not proc._LIVE and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.stop_all()
    thread.join(10)
    assert outcome
    assert isinstance(outcome[0], Stopped)


def test_secret_needs_exactly_one_source(write_plan: Callable[..., Path]) -> None:
    path = write_plan("""
        plan: p
        secrets:
          both: {env: A, file: a.txt}
          none: {}
        steps:
          - name: s
            run: ['true']
    """)
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    messages = [f"{i.field}: {i.message}" for i in caught.value.issues]
    assert messages == [
        "secrets.both: give exactly one of `env:` or `file:`",
        "secrets.none: give exactly one of `env:` or `file:`",
    ]


def test_http_action_status_may_be_one_number() -> None:
    assert HttpOptions.model_validate({"url": "http://x", "status": 204}).status == [204]


def test_wait_longer_than_its_timeout_is_an_error(write_plan: Callable[..., Path]) -> None:
    path = write_plan("""
        plan: p
        steps:
          - name: settle
            wait: 2m
    """)
    issues = validate([path])[str(path)]
    assert [(i.severity, i.line, i.message) for i in issues] == [
        ("error", 4, "waits 120s but the step's timeout is 60s")
    ]


def test_unusable_url_is_a_failed_outcome_not_a_crash(tmp_path: Path) -> None:
    ctx = Context(tmp_path, 2.0)
    outcome = HttpAction().execute(HttpOptions.model_validate({"url": "http://exa mple:x/"}), ctx)
    assert not outcome.ok
    assert "InvalidURL" in outcome.summary or "UnsupportedProtocol" in outcome.summary
    verdict = HttpCheck().check(HttpCheckOptions.model_validate({"url": "http://[bad/"}), ctx)
    assert not verdict.passed


def test_number_where_text_is_expected_hints_at_quoting(write_plan: Callable[..., Path]) -> None:
    path = write_plan("""
        plan: p
        steps:
          - name: nap
            run: [sleep, 5]
    """)
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert caught.value.issues[0].hint == "quote the value to make it text, e.g. '5' instead of 5"
