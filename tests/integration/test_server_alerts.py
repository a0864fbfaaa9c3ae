"""Alerts over the API (``POST /api/v1/alerts/alertmanager``, ``POST /api/v1/alerts``) on
real HTTP, SQLite and PostgreSQL: an alert is stored in the trigger inbox for its service
and rings the service's running watch, a real ``backout watch`` in a thread of the test,
which backs out. The watches' polls are switched off (an hour apart), so only the ring can
wake them in time. The last test has a real Alertmanager post to the server with an API
token as its bearer credential.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from backout import commands
from backout.reports import RunReport
from backout.settings import Settings
from backout.store.inbox import InboxRow
from backout.triggers import watcher
from tests.alertmanager import Alertmanager, alertmanager_factory
from tests.callers import caller
from tests.integration.test_server import (
    ROLES,
    Api,
    assert_no_secrets,
    assert_problem,
    serve,
    with_password,
)
from tests.services import wait_until

__all__ = ["alertmanager_factory", "serve"]  # fixtures

HOUR = 3600.0
WAIT_S = 60.0
AM_PATH = "/api/v1/alerts/alertmanager"
GENERIC_PATH = "/api/v1/alerts"
PLAN = """\
plan: shop
service: shop
triggers:
  - name: paged
    alertmanager: {match: {service: shop}, match_re: {severity: "page|critical"}}
steps:
  - name: back out
    run: [sh, -c, 'echo backed-out >> marks']
"""
LABELS = {"alertname": "HighErrorRate", "service": "shop", "severity": "page"}


@pytest.fixture(autouse=True)
def no_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """A watch reads its inbox only when rung (and once as it starts)."""
    monkeypatch.setattr(watcher, "TICK_S", HOUR)
    monkeypatch.setattr(watcher, "POLL_PUSHED_S", HOUR)


# --- a watch of shop, running in a thread -----------------------------------------------------
class Watch:
    """``backout watch PLAN [--env ENV] --for 1h`` in a thread of the test, started and
    watching (its run journalled ``watch_started``); its run is keyed ``shop`` or
    ``shop@ENV``."""

    def __init__(self, url: str, plan: Path, environment: str | None = None) -> None:
        self.settings = Settings(database_url=url, actor="deployer", lease_ttl=5.0)
        self.me = caller(self.settings)
        self.key = f"shop@{environment}" if environment else "shop"
        self.box: list[object] = []
        self.thread = threading.Thread(
            target=self._run, args=(plan, environment), name=f"watch {self.key}", daemon=True
        )
        self.thread.start()
        wait_until(
            lambda: self.run_id() is not None or not self.thread.is_alive(), WAIT_S, "a watch"
        )
        assert self.thread.is_alive(), self.box
        self.id = str(self.run_id())

    def _run(self, plan: Path, environment: str | None) -> None:
        try:
            self.box.append(commands.watch(self.me, plan, HOUR, environment=environment))
        except BaseException as exc:  # reported by the test thread
            self.box.append(exc)

    def run_id(self) -> str | None:
        newest = commands.runs(self.me, self.key, limit=1)
        if not newest or newest[0].status != "running":
            return None
        run_id = str(newest[0].run_id)
        kinds = [e.kind for e in commands.journal(self.me, run_id)]
        return run_id if "watch_started" in kinds else None

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [dict(e.data) for e in commands.journal(self.me, self.id) if e.kind == kind]

    def finished(self) -> RunReport:
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive(), "the watch was never woken"
        result = self.box[0]
        if isinstance(result, BaseException):
            raise result
        assert isinstance(result, RunReport)
        return result

    def stop(self) -> None:
        """End a watch the test no longer needs (a manual trigger: it backs out, and ends)."""
        if self.thread.is_alive():
            commands.trigger(self.me, self.key, "the test is over")
            self.thread.join(WAIT_S)
            assert not self.thread.is_alive(), f"the watch of {self.key} did not end"


@pytest.fixture
def watch(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], Watch]:
    monkeypatch.chdir(tmp_path)  # where the plan's step leaves its marks
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    return lambda: Watch(with_password(store_url), plan)


# --- payloads ------------------------------------------------------------------------------
def now() -> str:
    return dt.datetime.now(tz=dt.UTC).isoformat()


def alert(
    status: str = "firing",
    starts_at: str | None = None,
    labels: dict[str, str] | None = None,
    fingerprint: str = "1a30ba71cca2921f",
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": labels if labels is not None else LABELS,
        "annotations": {"summary": "5xx above 5%"},
        "startsAt": starts_at or now(),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.local/graph",
        "fingerprint": fingerprint,
    }


def webhook(*alerts: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighErrorRate"}',
        "status": status,
        "receiver": "backout",
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://am-1.local:9093",
        "truncatedAlerts": 0,
        "alerts": list(alerts),
    }


def inbox_rows(api: Api) -> list[InboxRow]:
    with api.store.session() as session:
        rows = session.query(InboxRow).order_by(InboxRow.id).all()
        session.expunge_all()
        return rows


# --- tests ---------------------------------------------------------------------------------
def test_an_alertmanager_webhook_is_stored_and_backs_out_the_running_watch(
    serve: Any, watch: Callable[[], Watch], tmp_path: Path
) -> None:
    api = serve()
    token = api.token("operator", "alertmanager")
    running = watch()
    sent = alert()
    response = api.post(AM_PATH, token, json=webhook(sent))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["stored"] == 1
    assert answer["firing"] == 1
    assert answer["duplicates"] == 0
    assert answer["rung"] == [{"service": "shop", "run_id": running.id}]
    assert answer["unwatched"] == []
    (stored,) = answer["alerts"]
    assert stored["alertname"] == "HighErrorRate"
    assert stored["run_id"] == running.id
    assert stored["duplicate_of"] is None
    assert stored["fingerprint"] == "1a30ba71cca2921f"
    report = running.finished()
    assert (report.status, report.result) == ("succeeded", "backed_out"), report.message
    assert report.trigger is not None
    assert report.trigger["trigger"] == "paged"
    assert (tmp_path / "marks").read_text() == "backed-out\n"
    (row,) = inbox_rows(api)  # durable, and consumed by the run it was stored for
    assert (row.id, row.kind, row.service, row.run_id) == (
        stored["inbox_id"],
        "alertmanager",
        "shop",
        running.id,
    )
    assert row.consumed_at is not None
    assert row.data["labels"] == LABELS
    record = api.audited("trigger.alert")[-1]
    assert record.actor == "alertmanager"
    assert record.details["source"] == "alertmanager"
    assert record.details["alerts"] == ["HighErrorRate (firing)"]
    assert_no_secrets(api)


def test_a_copy_of_an_alert_that_acted_is_a_duplicate_and_a_resolved_one_only_a_note(
    serve: Any, watch: Callable[[], Watch], tmp_path: Path
) -> None:
    api = serve()
    token = api.token("operator")
    first = watch()
    sent = alert()
    assert api.post(AM_PATH, token, json=webhook(sent)).status_code == 200
    assert first.finished().result == "backed_out"
    # no watch now: the copy is kept, for nobody, and named a duplicate of the first run's
    later = api.post(AM_PATH, token, json=webhook(sent)).json()
    assert later["unwatched"] == ["shop"]
    assert later["rung"] == []
    assert later["alerts"][0]["run_id"] is None
    assert later["alerts"][0]["duplicate_of"] == first.id
    # the watch re-armed on the restored release gets another member's copy and the
    # resolved notification: each is journalled, neither backs out
    second = watch()
    resolved = {**sent, "status": "resolved", "endsAt": now()}
    copies = webhook(sent, resolved, status="resolved")
    answer = api.post(AM_PATH, token, json=copies).json()
    assert (answer["stored"], answer["firing"], answer["resolved"]) == (2, 1, 1)
    assert answer["duplicates"] == 2  # both the firing (fingerprint, startsAt) that acted
    assert answer["rung"] == [{"service": "shop", "run_id": second.id}]
    wait_until(lambda: len(second.events("alert_ignored")) == 2, WAIT_S, "both journalled")
    why = sorted(e["why"] for e in second.events("alert_ignored"))
    assert why == ["duplicate", "resolved"]
    assert second.thread.is_alive()  # still watching
    ended = api.post("/api/v1/services/shop/trigger", token, json={"reason": "end the test"})
    assert ended.status_code == 202, ended.text
    report = second.finished()
    assert report.trigger is not None
    assert report.trigger["trigger"] == "manual"  # not the alert
    assert (tmp_path / "marks").read_text() == "backed-out\n" * 2


def test_a_generic_alert_backs_out_the_watch_of_its_service(
    serve: Any, watch: Callable[[], Watch]
) -> None:
    api = serve()
    token = api.token("admin", "grafana")
    running = watch()
    # labels that no `alertmanager:` trigger matches: stored and journalled, no backout
    quiet = {"service": "shop", "alertname": "DiskFilling", "labels": {"severity": "info"}}
    answer = api.post(GENERIC_PATH, token, json=quiet).json()
    assert answer["rung"] == [{"service": "shop", "run_id": running.id}]
    wait_until(lambda: bool(running.events("alert_ignored")), WAIT_S, "the quiet alert")
    assert running.events("alert_ignored")[0]["why"] == "no_trigger"
    paging = {
        "service": "shop",
        "alertname": "CheckoutDown",
        "labels": {"severity": "critical"},
        "reason": "checkout answers 503",
    }
    response = api.post(GENERIC_PATH, token, json=paging)
    assert response.status_code == 200, response.text
    assert response.json()["alerts"][0]["fingerprint"].startswith("labels:")
    report = running.finished()
    assert report.result == "backed_out"
    assert report.trigger is not None
    assert report.trigger["trigger"] == "paged"
    assert api.audited("trigger.alert")[-1].details["source"] == "api"
    assert api.audited("trigger.alert")[-1].actor == "grafana"


def test_alerts_need_the_operator_role_and_a_refusal_is_audited(serve: Any) -> None:
    api = serve()
    tokens = {role: api.token(role) for role in ROLES}
    bodies = {
        AM_PATH: webhook(alert()),
        GENERIC_PATH: {"service": "shop", "alertname": "HighErrorRate"},
    }
    for path, body in bodies.items():
        unauthenticated = assert_problem(api.post(path, json=body), 401)
        assert "token" in unauthenticated["detail"].lower()
        assert (
            api.post(path, headers={"Authorization": "Bearer nope"}, json=body).status_code == 401
        )
        for role, token in tokens.items():
            denied = len(api.audited("api.denied"))
            response = api.post(path, token, json=body)
            if role in ("operator", "admin"):
                assert response.status_code == 200, response.text
                continue
            problem = assert_problem(response, 403)
            assert "needs the role operator or admin" in problem["detail"]
            records = api.audited("api.denied")
            assert len(records) == denied + 1
            assert records[-1].actor == f"{role}-bot"
            assert records[-1].details["path"] == path
            assert records[-1].details["permission"] == "operate"
    # only the operator's and the admin's requests reached the inbox
    assert len(inbox_rows(api)) == 4
    assert_no_secrets(api)


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        (AM_PATH, b"{not json", 422, ""),
        (AM_PATH, {**webhook(alert()), "version": "3"}, 422, "version"),
        (AM_PATH, {k: v for k, v in webhook(alert()).items() if k != "alerts"}, 422, "alerts"),
        (AM_PATH, webhook({**alert(), "startsAt": "yesterday"}), 422, "alerts.0.startsAt"),
        (AM_PATH, webhook({**alert(), "status": "pending"}), 422, "alerts.0.status"),
        (AM_PATH, webhook(alert(), alert(labels={"alertname": "X"})), 400, "alerts.1.labels"),
        (GENERIC_PATH, {"service": "shop"}, 422, "alertname"),
        (GENERIC_PATH, {"service": "shop", "alertname": "X", "status": "bad"}, 422, "status"),
        (GENERIC_PATH, {"service": "shop", "alertname": "X", "colour": "red"}, 422, "colour"),
        (GENERIC_PATH, {"service": "shop", "alertname": "X", "starts_at": "1pm"}, 422, "starts"),
    ],
)
def test_a_payload_that_is_not_an_alert_is_a_problem_naming_the_field(
    serve: Any, path: str, body: Any, status: int, field: str
) -> None:
    api = serve()
    token = api.token("operator")
    sent = {"content": body} if isinstance(body, bytes) else {"json": body}
    problem = assert_problem(api.post(path, token, **sent), status)
    assert field in problem["detail"]
    assert "hint" in problem
    assert inbox_rows(api) == []  # all of a request's alerts, or none
    assert_no_secrets(api)


def test_an_alert_for_a_service_nobody_watches_is_kept_and_says_so(serve: Any) -> None:
    api = serve()
    token = api.token("operator")
    answer = api.post(AM_PATH + "?service=cart", token, json=webhook(alert())).json()
    assert answer["unwatched"] == ["cart"]
    assert answer["rung"] == []
    (row,) = inbox_rows(api)
    assert (row.service, row.run_id, row.consumed_at) == ("cart", None, None)
    assert api.audited("trigger.alert")[-1].subject == "service:cart"


def test_a_real_alertmanager_posts_to_the_server_with_a_token(
    serve: Any,
    watch: Callable[[], Watch],
    alertmanager_factory: Callable[..., Alertmanager],
    tmp_path: Path,
) -> None:
    api = serve()
    token_file = tmp_path / "backout-token"
    token_file.write_text(api.token("operator", "alertmanager") + "\n")
    alertmanager = alertmanager_factory(api.url + AM_PATH, token_file)
    running = watch()
    alertmanager.post([{"labels": LABELS, "annotations": {"summary": "5xx above 5%"}}])
    report = running.finished()
    assert (report.status, report.result) == ("succeeded", "backed_out"), report.message
    assert report.trigger is not None
    assert report.trigger["trigger"] == "paged"
    record = api.audited("trigger.alert")[0]
    assert record.actor == "alertmanager"
    assert record.subject == f"run:{running.id}"
    (row,) = [r for r in inbox_rows(api) if r.data.get("status") == "firing"]
    assert row.data["delivered_by"] == alertmanager.url
    assert_no_secrets(api)
