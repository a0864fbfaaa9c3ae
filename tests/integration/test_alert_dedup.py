"""Each Alertmanager alert acts once, on SQLite and PostgreSQL: the store's claim on
(service, fingerprint, startsAt), the watcher's verdict on every kind of notification, and
a watch re-armed after a backout that receives a late copy of the same alert."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backout import commands
from backout.plans import load_plan
from backout.settings import Settings
from backout.store import inbox
from backout.store.db import Store, open_store
from backout.telemetry import SourceContext
from backout.triggers.alerts import WebhookPayload
from backout.triggers.kinds import Baseline
from backout.triggers.listener import TOKEN_ENV
from backout.triggers.watcher import Fired, WatchContext, Watcher
from tests.callers import caller
from tests.services import free_port, wait_until

TOKEN = "dedup-test-token-9a8b7c6d5e4f"
KEY = ("1a30ba71cca2921f", "2026-11-26T10:00:00.000000+00:00")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.dispose()


# --- the claim in the store -----------------------------------------------------------------
def test_an_alert_is_claimed_once_per_service_and_remembered_across_runs(store_url: str) -> None:
    first = open_store(store_url)
    with first.session() as session:
        assert inbox.claim_alert(session, "shop", KEY, "HighErrorRate", "run-1").run_id == "run-1"
    with first.session() as session:
        # another run (another member's copy, a re-armed watch) gets the first run's claim
        assert inbox.claim_alert(session, "shop", KEY, "HighErrorRate", "run-2").run_id == "run-1"
    first.dispose()
    again = open_store(store_url)  # a new process: the memory is in the store, not in memory
    with again.session() as session:
        row = inbox.acted_on(session, "shop", KEY)
        assert row is not None
        assert row.run_id == "run-1"
        # the same labels firing again later are a new alert; another service is its own
        later = (KEY[0], "2026-11-26T11:00:00.000000+00:00")
        assert inbox.claim_alert(session, "shop", later, "HighErrorRate", "run-3").run_id == "run-3"
        assert inbox.claim_alert(session, "cart", KEY, "HighErrorRate", "run-4").run_id == "run-4"
    again.dispose()


def test_two_runs_claiming_at_once_agree_on_one_winner(store_url: str) -> None:
    stores = [open_store(store_url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    winners: list[str] = []

    def claim(store: Store, run_id: str) -> None:
        barrier.wait()
        with store.session() as session:
            winners.append(inbox.claim_alert(session, "shop", KEY, "A", run_id).run_id)

    threads = [threading.Thread(target=claim, args=(s, f"run-{i}")) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(winners) == len(stores)
    assert len(set(winners)) == 1
    for opened in stores:
        opened.dispose()


# --- the watcher's verdicts -----------------------------------------------------------------
PLAN = """\
plan: shop
service: shop
triggers:
  - name: paged
    alertmanager: {match: {service: shop}}
steps:
  - name: restore
    run: ['true']
"""


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).isoformat().replace("+00:00", "Z")


def alert(
    starts: float, status: str = "firing", service: str = "shop", fingerprint: str = KEY[0]
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "HighErrorRate", "service": service},
        "annotations": {"summary": "5xx above 5%"},
        "startsAt": iso(starts),
        "fingerprint": fingerprint,
    }


def deliver(store: Store, run_id: str, *alerts: dict[str, Any], member: str = "am-1") -> None:
    """Queue alerts exactly as the listener does for one webhook."""
    payload = WebhookPayload.model_validate(
        {
            "version": "4",
            "groupKey": "{}:{}",
            "status": "firing",
            "receiver": "backout",
            "externalURL": f"http://{member}:9093",
            "alerts": list(alerts),
        }
    )
    with store.session() as session:
        for item in payload.alerts:
            data = item.entry(payload)
            inbox.put(session, "shop", "alertmanager", item.name, "alertmanager", data, run_id)


class Notes(list[tuple[str, dict[str, Any]]]):
    def __call__(self, kind: str, **data: Any) -> None:
        self.append((kind, data))

    def ignored(self) -> list[str]:
        return [data["why"] for kind, data in self if kind == "alert_ignored"]


def watcher(store: Store, tmp_path: Path, run_id: str, since: float) -> tuple[Watcher, Notes]:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN)
    notes = Notes()

    def no_sources(timeout: float, interval: float) -> SourceContext:
        raise AssertionError("this plan has no signals")

    context = WatchContext(store, "shop", run_id, {}, no_sources, notes, since)
    return Watcher(load_plan(path).plan, Baseline(), context), notes


def test_every_kind_of_notification_is_journalled(store: Store, tmp_path: Path) -> None:
    since = time.time()
    first, notes = watcher(store, tmp_path, "run-1", since)
    deliver(
        store,
        "run-1",
        alert(since - 60, fingerprint="0000000000000001"),  # fired before the run began
        alert(since + 1, status="resolved", fingerprint="0000000000000002"),
        alert(since + 1, service="billing", fingerprint="0000000000000003"),
        alert(since + 1),  # new: acts
        alert(since + 1),  # the same alert again in the same batch
    )
    fired = first.watch(0)
    assert isinstance(fired, Fired)
    assert fired.trigger == "paged"
    assert fired.evidence["labels"] == {"alertname": "HighErrorRate", "service": "shop"}
    assert fired.evidence["annotations"] == {"summary": "5xx above 5%"}
    assert fired.evidence["fingerprint"] == KEY[0]
    assert notes.ignored() == ["predates_release", "resolved", "no_trigger", "duplicate"]
    predates = next(d for k, d in notes if d.get("why") == "predates_release")
    assert "before this run began" in predates["reason"]

    # while the run backs out: the other member's copy, a new alert, a person's trigger
    deliver(store, "run-1", alert(since + 1), member="am-2")
    deliver(store, "run-1", alert(since + 2, fingerprint="0000000000000004"))
    with store.session() as session:
        inbox.put(session, "shop", "manual", "looks bad", "alice", {}, "run-1")
    first.drain()
    assert notes.ignored()[-2:] == ["duplicate", "after_trigger"]
    assert notes[-1] == (
        "warning",
        {"message": "alice asked for a backout while one was running: looks bad"},
    )

    # the watch re-armed on the restored release gets the late copy: it must not act again
    rearmed, later = watcher(store, tmp_path, "run-2", time.time())
    deliver(store, "run-2", alert(since + 1), member="am-2")
    assert rearmed.watch(0) is None
    [(kind, data)] = later
    assert (kind, data["why"]) == ("alert_ignored", "duplicate")
    assert "already made run run-1 back out" in data["reason"]
    assert data["delivered_by"] == "http://am-2:9093"


def test_a_run_that_claimed_an_alert_may_act_on_it_again_after_a_crash(
    store: Store, tmp_path: Path
) -> None:
    """A crash between the claim and the backout: the resumed run (same id) still acts."""
    since = time.time()
    with store.session() as session:
        starts = dt.datetime.fromtimestamp(since + 1, tz=dt.UTC).isoformat(timespec="microseconds")
        inbox.claim_alert(session, "shop", (KEY[0], starts), "HighErrorRate", "run-1")
    resumed, notes = watcher(store, tmp_path, "run-1", since)
    deliver(store, "run-1", alert(since + 1))
    assert isinstance(resumed.watch(0), Fired)
    assert notes == []


# --- a whole watch, re-armed after its backout ---------------------------------------------
WATCH_PLAN = """\
plan: shop
service: shop
baseline:
  release: {readlink: rel/cur}
triggers:
  - name: paged by Alertmanager
    alertmanager: {match: {service: shop}}
steps:
  - name: back to the baseline release
    symlink: {link: rel/cur, target: "{{ baseline.release }}"}
    timeout: 5s
  - name: count restarts
    run: [sh, -c, 'echo restart >> restarts.txt']
"""


def settings(url: str) -> Settings:
    return Settings(database_url=url, actor="deployer", lease_ttl=5.0)


def watching(url: str) -> bool:
    """The newest run of the service has started watching (its listener is up, its run
    exists): an alert that starts now starts after the run began."""
    newest = commands.runs(caller(settings(url)), "shop", limit=1)
    if not newest or newest[0].status != "running":
        return False
    return any(
        e.kind == "watch_started" for e in commands.journal(caller(settings(url)), newest[0].run_id)
    )


def when_watching(
    url: str, port: int, body: Callable[[float], bytes], failures: list[BaseException]
) -> None:
    """Once a run watches, POST it the webhook ``body(starts)`` of an alert that starts now
    (from another thread; what goes wrong there is reported through ``failures``)."""

    def run() -> None:
        try:
            wait_until(lambda: watching(url), 30, "the watch to start")
            response = httpx.post(
                f"http://127.0.0.1:{port}/alertmanager",
                content=body(time.time()),
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=5,
            )
            assert response.status_code == 200, response.text
        except BaseException as exc:
            failures.append(exc)

    threading.Thread(target=run, daemon=True).start()


def test_a_late_copy_does_not_back_out_the_restored_release_again(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    for release in ("v1", "v2"):
        (tmp_path / "rel" / release).mkdir(parents=True)
    (tmp_path / "rel" / "cur").symlink_to("v1")
    plan = tmp_path / "plan.yaml"
    plan.write_text(WATCH_PLAN)
    commands.snapshot(caller(settings(store_url)), plan)
    (tmp_path / "rel" / "cur").unlink()
    (tmp_path / "rel" / "cur").symlink_to("v2")
    port = free_port()
    failures: list[BaseException] = []
    started: list[float] = []

    def webhook(member: str) -> Callable[[float], bytes]:
        def body(now: float) -> bytes:
            started.append(started[0] if started else now)  # every copy: the same startsAt
            return json.dumps(
                {
                    "version": "4",
                    "groupKey": "{}:{}",
                    "status": "firing",
                    "receiver": "backout",
                    "externalURL": f"http://{member}:9093",
                    "alerts": [alert(started[0])],
                }
            ).encode()

        return body

    when_watching(store_url, port, webhook("am-1"), failures)
    backed = commands.watch(caller(settings(store_url)), plan, 60, listen=f"127.0.0.1:{port}")
    assert not failures
    assert (backed.result, backed.exit_code) == ("backed_out", 4)
    assert (tmp_path / "rel" / "cur").readlink() == Path("v1")

    # the other member of the HA pair delivers its copy to the watch re-armed on v1
    when_watching(store_url, port, webhook("am-2"), failures)
    rearmed = commands.watch(caller(settings(store_url)), plan, 3, listen=f"127.0.0.1:{port}")
    assert not failures
    assert (rearmed.result, rearmed.exit_code) == ("healthy", 0)
    assert (tmp_path / "restarts.txt").read_text() == "restart\n"  # one restart, not two
    events = commands.journal(caller(settings(store_url)), rearmed.run_id)
    [duplicate] = [e for e in events if e.kind == "alert_ignored"]
    assert duplicate.data["why"] == "duplicate"
    assert backed.run_id in duplicate.data["reason"]
    assert duplicate.data["delivered_by"] == "http://am-2:9093"

    _, lines = commands.explain_run(caller(settings(store_url)), backed.run_id)
    text = "\n".join(lines)
    assert "FIRED: 'paged by Alertmanager' (alertmanager): alert HighErrorRate is firing" in text
    assert "labels: alertname=HighErrorRate, service=shop" in text
    assert "annotations: summary=5xx above 5%" in text
    assert "delivered by http://am-1:9093" in text
    _, lines = commands.explain_run(caller(settings(store_url)), rearmed.run_id)
    assert any("alert 'HighErrorRate' not acted on (duplicate)" in line for line in lines)
