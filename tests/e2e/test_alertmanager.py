"""End to end with real Alertmanagers (Debian ``prometheus-alertmanager``): an HA pair that
lost its peer link (two unclustered members) notifies `backout watch --listen` with a bearer
token. The first copy of the alert backs the release out; the other member's copy, arriving
at the watch re-armed on the restored release, is journalled as a duplicate and does
nothing; the resolved notification is journalled too."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from backout import commands
from backout.settings import Settings
from backout.triggers.listener import listen_address
from tests.alertmanager import Alertmanager, alertmanager_factory  # noqa: F401
from tests.callers import caller
from tests.services import free_port, wait_until

PLAN = """\
plan: shop
service: shop
baseline:
  release: {readlink: rel/cur}
triggers:
  - name: paged by Alertmanager
    alertmanager: {match: {service: shop}, match_re: {severity: "page|critical"}}
steps:
  - name: back to the baseline release
    symlink: {link: rel/cur, target: "{{ baseline.release }}"}
    timeout: 5s
  - name: restart
    run: [sh, -c, 'echo restart >> restarts.txt']
"""
LABELS = {"alertname": "HighErrorRate", "service": "shop", "severity": "page"}
DELIVERY_S = 30.0  # generous: Alertmanager needs group_wait (100 ms) and a POST
# The re-armed watch lasts this long; the late copy and the resolved notice arrive within
# about a second of it starting (group_wait 100 ms, group_interval 1 s).
REARMED_WATCH_S = 8.0


def settings(url: str) -> Settings:
    return Settings(database_url=url, actor="deployer", lease_ttl=5.0)


def rfc3339(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).isoformat(timespec="milliseconds")


def watching(url: str) -> str | None:
    """The id of the service's run once it watches (its listener up, its run created)."""
    newest = commands.runs(caller(settings(url)), "shop", limit=1)
    if not newest or newest[0].status != "running":
        return None
    run_id = str(newest[0].run_id)
    events = commands.journal(caller(settings(url)), run_id)
    return run_id if any(e.kind == "watch_started" for e in events) else None


def in_background(work: Callable[[], None], failures: list[BaseException]) -> None:
    def run() -> None:
        try:
            work()
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)

    threading.Thread(target=run, daemon=True).start()


def journalled(url: str, run_id: str, why: str) -> bool:
    return any(
        e.kind == "alert_ignored" and e.data.get("why") == why
        for e in commands.journal(caller(settings(url)), run_id)
    )


def test_an_ha_pair_backs_out_once(
    tmp_path: Path,
    alertmanager_factory: Callable[..., Alertmanager],  # noqa: F811
) -> None:
    url = f"sqlite:///{tmp_path / 'store' / 'backout.db'}"
    token_file = tmp_path / "listen-token"
    token_file.write_text("e2e-alertmanager-token-5d2c7f1a9b3e\n")
    token_file.chmod(0o600)
    port = free_port()
    webhook = f"http://127.0.0.1:{port}/alertmanager"
    first, second = (alertmanager_factory(webhook, token_file) for _ in range(2))
    for release in ("v1", "v2"):
        (tmp_path / "rel" / release).mkdir(parents=True)
    (tmp_path / "rel" / "cur").symlink_to("v1")
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    commands.snapshot(caller(settings(url)), plan)
    (tmp_path / "rel" / "cur").unlink()
    (tmp_path / "rel" / "cur").symlink_to("v2")  # the release under watch
    listen = listen_address(f"127.0.0.1:{port}", token_file=str(token_file), environ={})
    failures: list[BaseException] = []
    alert: dict[str, object] = {}

    def fire() -> None:
        wait_until(lambda: watching(url) is not None, DELIVERY_S, "the watch to start")
        alert.update(
            labels=LABELS,
            annotations={"summary": "5xx above 5% on shop"},
            startsAt=rfc3339(time.time()),
            generatorURL="http://prometheus.example:9090/graph",
        )
        first.post([alert])  # as Prometheus does: to one member first...

    in_background(fire, failures)
    began = time.monotonic()
    backed = commands.watch(caller(settings(url)), plan, 120, listen=listen)
    assert not failures
    assert (backed.result, backed.exit_code) == ("backed_out", 4)
    assert time.monotonic() - began < DELIVERY_S
    assert (tmp_path / "rel" / "cur").readlink() == Path("v1")
    assert backed.trigger is not None
    assert backed.trigger["evidence"]["labels"] == LABELS

    def late_copy_then_resolved() -> None:
        run_id = ""

        def rearmed() -> bool:
            nonlocal run_id
            run_id = watching(url) or ""
            return run_id not in ("", backed.run_id)

        wait_until(rearmed, DELIVERY_S, "the re-armed watch to start")
        second.post([alert])  # ...and to the other, which delivers on its own, late
        wait_until(lambda: journalled(url, run_id, "duplicate"), DELIVERY_S, "the late copy")
        second.post([{**alert, "endsAt": rfc3339(time.time())}])  # the alert resolves

    in_background(late_copy_then_resolved, failures)
    rearmed = commands.watch(caller(settings(url)), plan, REARMED_WATCH_S, listen=listen)
    assert not failures
    assert (rearmed.result, rearmed.exit_code) == ("healthy", 0)
    assert (tmp_path / "rel" / "cur").readlink() == Path("v1")
    assert (tmp_path / "restarts.txt").read_text() == "restart\n"  # restarted once

    events = commands.journal(caller(settings(url)), rearmed.run_id)
    ignored = {e.data["why"]: e.data for e in events if e.kind == "alert_ignored"}
    assert set(ignored) == {"duplicate", "resolved"}
    assert backed.run_id in ignored["duplicate"]["reason"]
    assert ignored["duplicate"]["delivered_by"] == second.url
    assert not [e for e in events if e.kind in ("trigger_fired", "backout_started")]

    _, lines = commands.explain_run(caller(settings(url)), backed.run_id)
    text = "\n".join(lines)
    assert "FIRED: 'paged by Alertmanager' (alertmanager): alert HighErrorRate is firing" in text
    assert "labels: alertname=HighErrorRate, service=shop, severity=page" in text
    assert "annotations: summary=5xx above 5% on shop" in text
    assert f"delivered by {first.url}" in text


def test_basic_auth_from_a_real_alertmanager(
    tmp_path: Path,
    alertmanager_factory: Callable[..., Alertmanager],  # noqa: F811
) -> None:
    url = f"sqlite:///{tmp_path / 'store' / 'backout.db'}"
    token_file = tmp_path / "listen-token"
    token_file.write_text("e2e-basic-auth-password-8e3f0a6c\n")
    port = free_port()
    sender = alertmanager_factory(f"http://127.0.0.1:{port}/alertmanager", token_file, "am")
    (tmp_path / "rel" / "v1").mkdir(parents=True)
    (tmp_path / "rel" / "cur").symlink_to("v1")
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    commands.snapshot(caller(settings(url)), plan)
    failures: list[BaseException] = []

    def fire() -> None:
        wait_until(lambda: watching(url) is not None, DELIVERY_S, "the watch to start")
        sender.post([{"labels": LABELS, "startsAt": rfc3339(time.time())}])

    in_background(fire, failures)
    listen = listen_address(f"127.0.0.1:{port}", str(token_file), user="am", environ={})
    report = commands.watch(caller(settings(url)), plan, 120, listen=listen)
    assert not failures
    assert (report.result, report.exit_code) == ("backed_out", 4)


@pytest.fixture(autouse=True)
def _no_token_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The token comes from the file, as Alertmanager's credentials_file reads it."""
    monkeypatch.delenv("BACKOUT_LISTEN_TOKEN", raising=False)
