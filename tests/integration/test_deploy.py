"""Progressive deploys and watches through the real engine and store (SQLite and
PostgreSQL): checkpoints, triggers, partial backouts in reverse order, promotion,
approvals, manual triggers and Alertmanager webhooks. Signals are real processes reading
a file the test changes, so every decision comes from real telemetry readings."""

from __future__ import annotations

import datetime as dt
import json
import socket
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from backout import commands
from backout.errors import UsageError
from backout.settings import Settings
from tests.callers import caller

STAGES = 4


def settings(url: str) -> Settings:
    return Settings(database_url=url, actor="deployer", lease_ttl=5.0)


def layout(
    folder: Path, hold: str | list[str] = "600ms", stages: int = STAGES, extra: str = ""
) -> Path:
    """v1 and v2 releases; each stage records itself in stages.txt and knows its undo.
    ``hold`` is every stage's, or one per stage (a long hold where a trigger must fire, so
    a busy machine cannot let the stage pass first)."""
    holds = hold if isinstance(hold, list) else [hold] * stages
    for release in ("v1", "v2"):
        (folder / "rel" / release).mkdir(parents=True, exist_ok=True)
    (folder / "rel" / "cur").symlink_to("v1")
    (folder / "errors.txt").write_text("0\n")
    stage_text = "".join(
        textwrap.dedent(f"""\
        - name: stage {n}
          steps:
            - name: shift {n}
              run: [sh, -c, 'echo {n} >> stages.txt']
              undo: {{run: [sh, -c, 'echo undo {n} >> stages.txt']}}
              timeout: 5s
          hold: {holds[n - 1]}
        """)
        for n in range(1, stages + 1)
    )
    plan = folder / "plan.yaml"
    plan.write_text(
        textwrap.dedent("""\
        plan: shop
        service: shop
        baseline:
          release: {readlink: rel/cur}
        telemetry:
          errors:
            command: [cat, errors.txt]
            interval: 100ms
        triggers:
          - name: errors above 5
            signal: errors
            threshold: {above: 5, for: 300ms}
        """)
        + extra
        + "deploy:\n  strategy: canary\n  stages:\n"
        + textwrap.indent(stage_text, "    ")
        + textwrap.dedent("""\
        steps:
          - name: back to the last good release
            symlink: {link: rel/cur, target: "{{ baseline.release }}"}
        verify:
          - name: the last good release is live
            command: [test, "{{ baseline.release }}", "=", v1]
        """)
    )
    return plan


def fail_when_stage_starts(folder: Path, stage: int) -> threading.Thread:
    """Raise the error signal as soon as stage N's forward step has run."""

    def watch() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = (folder / "stages.txt").read_text() if (folder / "stages.txt").exists() else ""
            if str(stage) in text.split():
                (folder / "errors.txt").write_text("50\n")
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def kinds(url: str, run_id: str) -> list[str]:
    return [e.kind for e in commands.journal(caller(settings(url)), run_id)]


def test_trigger_at_stage_2_of_4_reverses_2_then_1_only(store_url: str, tmp_path: Path) -> None:
    plan = layout(tmp_path, hold=["600ms", "60s", "600ms", "600ms"])
    commands.snapshot(caller(settings(store_url)), plan, telemetry_window=0.3)
    fail_when_stage_starts(tmp_path, 2)
    report = commands.deploy(caller(settings(store_url)), plan, release="v2")
    assert report.status == "succeeded"
    assert report.result == "backed_out"
    assert report.exit_code == 4
    assert report.trigger is not None
    assert report.trigger["trigger"] == "errors above 5"
    assert (tmp_path / "stages.txt").read_text().split("\n")[:-1] == ["1", "2", "undo 2", "undo 1"]
    events = commands.journal(caller(settings(store_url)), report.run_id)
    names = [s.name for s in report.steps]
    finished = [names[e.step] for e in events if e.kind == "step_finished" and e.step is not None]
    assert finished == [
        "stage 1: shift 1",
        "stage 2: shift 2",
        "undo stage 2: shift 2",
        "undo stage 1: shift 1",
        "back to the last good release",
    ]
    skipped = {names[e.step] for e in events if e.kind == "step_skipped" and e.step is not None}
    assert skipped == {"undo stage 4: shift 4", "undo stage 3: shift 3"}
    passed = [e.data["stage"] for e in events if e.kind == "checkpoint_passed"]
    assert passed == [0]
    fired = [e for e in events if e.kind == "trigger_fired"]
    assert len(fired) == 1
    assert fired[0].data["stage"] == 1
    assert fired[0].data["evidence"]["statistic"] == 50.0
    assert (tmp_path / "rel" / "cur").readlink() == Path("v1")


def test_good_release_is_promoted_and_becomes_the_baseline(store_url: str, tmp_path: Path) -> None:
    plan = layout(tmp_path, hold="300ms", stages=2)
    plan.write_text(
        plan.read_text().replace(
            "    - name: stage 2\n      steps:\n",
            "    - name: stage 2\n      steps:\n        - name: switch\n"
            "          symlink: {link: rel/cur, target: v2}\n",
        )
    )
    commands.snapshot(caller(settings(store_url)), plan, telemetry_window=0.3)
    report = commands.deploy(caller(settings(store_url)), plan, release="v2")
    assert (report.status, report.result, report.exit_code) == ("succeeded", "promoted", 0)
    assert (tmp_path / "rel" / "cur").readlink() == Path("v2")
    events = commands.journal(caller(settings(store_url)), report.run_id)
    assert [e.data["stage"] for e in events if e.kind == "checkpoint_passed"] == [0, 1]
    promoted = next(e for e in events if e.kind == "promoted")
    assert promoted.data["baseline"] == {"release": "v2"}
    audit = commands.audit_log(caller(settings(store_url)), action="snapshot.taken")
    assert audit[-1].details["reason"] == "promoted"


def test_failed_forward_step_backs_out_what_was_done(store_url: str, tmp_path: Path) -> None:
    plan = layout(tmp_path, stages=2)
    plan.write_text(
        plan.read_text().replace("echo 2 >> stages.txt", "echo 2 >> stages.txt; exit 7")
    )
    commands.snapshot(caller(settings(store_url)), plan, telemetry_window=0.3)
    report = commands.deploy(caller(settings(store_url)), plan)
    assert report.result == "backed_out"
    assert report.trigger is not None
    assert report.trigger["trigger_kind"] == "step"
    # the failed step may have done part of its work: its undo runs too, newest first
    assert (tmp_path / "stages.txt").read_text().split("\n")[:-1] == ["1", "2", "undo 2", "undo 1"]


def test_manual_trigger_from_a_person(store_url: str, tmp_path: Path) -> None:
    plan = layout(tmp_path, hold="20s", stages=1)
    commands.snapshot(caller(settings(store_url)), plan, telemetry_window=0.3)
    with pytest.raises(UsageError, match="no deploy or watch is running for service 'shop'"):
        commands.trigger(caller(settings(store_url)), "shop", "too early")

    def pull_the_cord() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                commands.trigger(
                    caller(settings(store_url)), "shop", "support sees checkout errors"
                )
                return
            except UsageError:
                time.sleep(0.1)

    threading.Thread(target=pull_the_cord, daemon=True).start()
    started = time.monotonic()
    report = commands.deploy(caller(settings(store_url)), plan)
    assert time.monotonic() - started < 15  # it did not sit out the 20 s hold
    assert report.result == "backed_out"
    assert report.trigger is not None
    assert "support sees checkout errors" in report.trigger["summary"]
    assert commands.audit_log(caller(settings(store_url)), action="trigger.manual")


def test_checkpoint_waits_for_approval(store_url: str, tmp_path: Path) -> None:
    plan = layout(tmp_path, hold="100ms", stages=1)
    plan.write_text(
        plan.read_text().replace("      hold: 100ms", "      hold: 100ms\n      approve: true")
    )
    commands.snapshot(caller(settings(store_url)), plan, telemetry_window=0.3)
    approved_at: list[float] = []

    def approve_later() -> None:
        time.sleep(1.0)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            runs = commands.runs(caller(settings(store_url)))
            try:
                if runs:
                    commands.approve(caller(settings(store_url)), runs[0].run_id, "looks fine")
                    approved_at.append(time.monotonic())
                    return
            except UsageError:
                pass
            time.sleep(0.1)

    threading.Thread(target=approve_later, daemon=True).start()
    report = commands.deploy(caller(settings(store_url)), plan)
    assert report.result == "promoted"
    assert approved_at
    assert "stage_approved" in kinds(store_url, report.run_id)


def test_no_data_with_on_no_data_backout_fires(store_url: str, tmp_path: Path) -> None:
    plan = layout(tmp_path, hold="5s", stages=1)
    plan.write_text(
        plan.read_text().replace(
            "threshold: {above: 5, for: 300ms}",
            "threshold: {above: 5, for: 300ms}\n    on_no_data: backout",
        )
    )
    commands.snapshot(caller(settings(store_url)), plan, telemetry_window=0.3)
    (tmp_path / "errors.txt").write_text("not a number\n")
    report = commands.deploy(caller(settings(store_url)), plan)
    assert report.result == "backed_out"
    assert report.trigger is not None
    assert "no data" in report.trigger["summary"]


def test_watch_healthy_then_watch_that_backs_out(store_url: str, tmp_path: Path) -> None:
    plan = layout(tmp_path, stages=1)
    commands.snapshot(caller(settings(store_url)), plan, telemetry_window=0.3)
    healthy = commands.watch(caller(settings(store_url)), plan, 0.8)
    assert (healthy.result, healthy.exit_code) == ("healthy", 0)
    (tmp_path / "rel" / "cur").unlink()
    (tmp_path / "rel" / "cur").symlink_to("v2")
    (tmp_path / "errors.txt").write_text("9\n")
    backed = commands.watch(caller(settings(store_url)), plan, 30)
    assert (backed.result, backed.exit_code) == ("backed_out", 4)
    assert (tmp_path / "rel" / "cur").readlink() == Path("v1")
    _, lines = commands.explain_run(caller(settings(store_url)), backed.run_id)
    text = "\n".join(lines)
    assert "why it backed out: 'errors above 5'" in text
    assert "FIRED: 'errors above 5' (threshold)" in text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


TOKEN = "test-listener-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def alert(labels: dict[str, str], status: str = "firing") -> dict[str, object]:
    """A real Alertmanager v4 webhook body, for an alert that started now."""
    now = dt.datetime.now(dt.UTC).isoformat()
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighErrorRate"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "backout",
        "groupLabels": {"alertname": labels["alertname"]},
        "commonLabels": labels,
        "commonAnnotations": {"summary": "5xx above 5%"},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": {"summary": "5xx"},
                "startsAt": now,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example/graph",
                "fingerprint": "abc123",
            }
        ],
    }


def test_alertmanager_webhook_fires_only_on_matching_labels(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKOUT_LISTEN_TOKEN", TOKEN)
    extra = (
        "  - name: paged by alertmanager\n"
        "    alertmanager: {match: {service: shop}, match_re: {severity: 'page|critical'}}\n"
    )
    plan = layout(tmp_path, stages=1)
    plan.write_text(plan.read_text().replace("triggers:\n", "triggers:\n" + extra))
    commands.snapshot(caller(settings(store_url)), plan, telemetry_window=0.3)
    port = free_port()
    url = f"http://127.0.0.1:{port}/alertmanager"
    responses: list[int] = []

    def send() -> None:
        # an alert that started before the run was created would not count: wait for it
        deadline = time.monotonic() + 20
        while (
            not commands.runs(caller(settings(store_url)), "shop") and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        responses.append(httpx.post(url, content=b"{not json", headers=AUTH, timeout=5).status_code)
        other = alert({"alertname": "DiskFull", "service": "billing", "severity": "page"})
        responses.append(httpx.post(url, json=other, headers=AUTH, timeout=2).status_code)
        ours = alert({"alertname": "HighErrorRate", "service": "shop", "severity": "critical"})
        responses.append(httpx.post(url, json=ours, headers=AUTH, timeout=2).status_code)

    threading.Thread(target=send, daemon=True).start()
    report = commands.watch(caller(settings(store_url)), plan, 30, listen=f"127.0.0.1:{port}")
    assert responses == [400, 200, 200]
    assert report.result == "backed_out"
    assert report.trigger is not None
    assert report.trigger["trigger"] == "paged by alertmanager"
    assert report.trigger["evidence"]["labels"]["alertname"] == "HighErrorRate"
    events = commands.journal(caller(settings(store_url)), report.run_id)
    rejected = [e for e in events if e.kind == "alert_rejected"]
    assert len(rejected) == 1
    assert "malformed Alertmanager webhook" in rejected[0].data["reason"]
    ignored = [e for e in events if e.kind == "alert_ignored"]
    assert [e.data["labels"]["service"] for e in ignored] == ["billing"]
    assert json.dumps(report.to_json())  # the whole report is JSON for --json
