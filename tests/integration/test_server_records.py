"""``backout server``'s flags, audit, outbox and snapshots endpoints, and the live figures its
``/metrics`` adds, over real HTTP (the ``serve`` fixture and ``Api`` client of
test_server.py), on SQLite and PostgreSQL. State the endpoints read is made with the verbs,
or as rows where only a long run would reach it (a held lease, a dead-lettered event).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from backout import commands
from backout.flags.model import FlagChange
from backout.store import outbox
from backout.store.models import AuditRow, LeaseRow, OutboxRow
from tests.integration.test_server import (
    Api,
    add_run,
    assert_no_secrets,
    assert_problem,
    serve,
)

__all__ = ["serve"]  # fixtures

ROLES = ("viewer", "operator", "approver", "admin")
TOKEN_URL = "https://hooks.example.com/services/T0KEN-in-the-path?sig=s1gnature-in-query"
SNAP_SECRET = "snapshot-secret-value-42"
SNAPPED = """plan: web
service: web
secrets:
  token: {env: BACKOUT_TEST_SNAPSHOT_TOKEN}
baseline:
  release: {readlink: current}
  token: {command: [echo, "{{ secrets.token }}"]}
steps:
  - name: back
    run: ['true']
"""


def put(api: Api, path: str, token: str | None, body: Any) -> Any:
    return api.request("PUT", path, token, json=body)


def allowed(api: Api, method: str, path: str, body: Any, permitted: set[str]) -> list[Any]:
    """Send the request with each role's token: those in ``permitted`` pass (their answers,
    in role order), the others get a 403 that is audited as api.denied."""
    answers = []
    for role in ROLES:
        denied = len(api.audited("api.denied"))
        response = api.request(method, path, api.token(role), json=body)
        if role in permitted:
            assert response.status_code in (200, 201), (role, response.text)
            answers.append(response)
            continue
        problem = assert_problem(response, 403)
        assert "needs the role" in problem["detail"]
        refusals = api.audited("api.denied")
        assert len(refusals) == denied + 1
        assert refusals[-1].actor == f"{role}-bot"
        assert refusals[-1].details["path"] == path.partition("?")[0]
    return answers


# --- flags ---------------------------------------------------------------------------------
def test_flags_read_and_change_as_the_cli_does_and_every_change_is_audited(serve: Any) -> None:
    api = serve()
    viewer, operator = api.token("viewer"), api.token("operator")
    assert api.get("/api/v1/flags", viewer).json() == []
    made = put(api, "/api/v1/flags/checkout.new", operator, {"enabled": True, "percentage": 30})
    assert made.status_code == 200, made.text
    assert made.json()["before"] is None
    after = made.json()["after"]
    assert (after["enabled"], after["percentage"], after["version"]) == (True, 30, 1)
    assert after["updated_by"] == "operator-bot"
    flipped = put(api, "/api/v1/flags/checkout.new", operator, {"enabled": False}).json()
    assert flipped["before"] == after
    assert (flipped["after"]["enabled"], flipped["after"]["percentage"]) == (False, 30)

    stored = commands.flags.get_flag(api.caller, "checkout.new")
    assert api.get("/api/v1/flags/checkout.new", viewer).json() == stored.to_json()
    assert api.get("/api/v1/flags", viewer).json() == [stored.to_json()]
    evaluated = api.get("/api/v1/flags/checkout.new", viewer, params={"for": "user-1"}).json()
    assert evaluated["evaluation"]["variant"] == "off"  # off: everyone gets the off variant
    assert evaluated["evaluation"]["value"] is False

    records = api.audited("flag.set")
    assert [(r.actor, r.subject, r.details["source"]) for r in records] == [
        ("operator-bot", "flag:checkout.new", "api"),
        ("operator-bot", "flag:checkout.new", "api"),
    ]
    history = api.get("/api/v1/flags/checkout.new/history", viewer).json()
    assert [h["seq"] for h in history] == [r.seq for r in records]
    assert history[1]["details"]["before"]["enabled"] is True
    assert history[1]["details"]["after"]["enabled"] is False
    latest = api.get("/api/v1/flags/checkout.new/history", viewer, params={"limit": 1}).json()
    assert [h["seq"] for h in latest] == [records[-1].seq]

    for path in ("/api/v1/flags/nope", "/api/v1/flags/nope/history"):
        problem = assert_problem(api.get(path, viewer), 404)
        assert "no flag 'nope'" in problem["detail"]
        assert problem["hint"]
    assert_problem(api.get("/api/v1/flags/-bad-", viewer), 400)
    assert_problem(put(api, "/api/v1/flags/-bad-", operator, {"enabled": True}), 400)
    unknown_variant = put(api, "/api/v1/flags/checkout.new", operator, {"on_variant": "blue"})
    assert "'blue' is not one of its variants" in assert_problem(unknown_variant, 400)["detail"]
    nothing = assert_problem(put(api, "/api/v1/flags/checkout.new", operator, {}), 422)
    assert "nothing to change" in nothing["detail"]
    assert_problem(put(api, "/api/v1/flags/x", operator, {"percentage": 101}), 422)
    assert_problem(put(api, "/api/v1/flags/x", operator, {"colour": "red"}), 422)
    assert_problem(api.get("/api/v1/flags/x/history", viewer, params={"limit": 0}), 422)
    assert len(api.audited("flag.set")) == 2  # refused changes leave no trace
    assert_no_secrets(api)


def test_setting_a_flag_needs_operate(serve: Any) -> None:
    api = serve()
    answers = allowed(
        api, "PUT", "/api/v1/flags/kill-switch", {"enabled": False}, {"operator", "admin"}
    )
    assert [a.json()["after"]["updated_by"] for a in answers] == ["operator-bot", "admin-bot"]
    assert [r.actor for r in api.audited("flag.set")] == ["operator-bot", "admin-bot"]
    assert_no_secrets(api)


# --- audit ---------------------------------------------------------------------------------
def test_the_audit_log_filters_and_verify_finds_a_broken_link(serve: Any) -> None:
    api = serve()
    viewer = api.token("viewer")
    for key in ("a", "b", "c"):
        commands.flags.set_flag(api.caller, key, FlagChange(enabled=True))

    def actions(**query: Any) -> list[tuple[str, str]]:
        response = api.get("/api/v1/audit", viewer, params=query)
        assert response.status_code == 200, response.text
        return [(r["action"], r["subject"]) for r in response.json()]

    everything = api.get("/api/v1/audit", viewer).json()
    assert [r["seq"] for r in everything] == sorted(r["seq"] for r in everything)
    assert everything == [e.to_json() for e in commands.audit_log(api.caller)]
    flags = [("flag.set", "flag:a"), ("flag.set", "flag:b"), ("flag.set", "flag:c")]
    assert actions(action="flag.") == flags
    assert actions(action="flag.set", limit=2) == flags[1:]  # the newest two, oldest first
    assert actions(subject="flag:b") == [flags[1]]
    assert actions(by="admin", action="flag") == flags
    assert actions(by="someone-else") == []
    assert actions(since="1h", action="flag") == flags
    assert actions(since="2000-01-01T00:00:00Z", action="flag") == flags
    assert actions(since="2999-01-01", action="flag") == []
    bad = assert_problem(api.get("/api/v1/audit", viewer, params={"since": "lately"}), 400)
    assert "since" in bad["detail"]
    assert bad["hint"]
    for limit in ("0", "1001", "many"):
        assert_problem(api.get("/api/v1/audit", viewer, params={"limit": limit}), 422)
    # keyset pages: older than the first record of a page, newer than its last
    seqs = [r["seq"] for r in everything]
    page = [r["seq"] for r in api.get("/api/v1/audit", viewer, params={"limit": 2}).json()]
    assert page == seqs[-2:]
    older = api.get("/api/v1/audit", viewer, params={"limit": 2, "before": page[0]}).json()
    assert [r["seq"] for r in older] == seqs[-4:-2]
    newer = api.get("/api/v1/audit", viewer, params={"limit": 1, "after": seqs[0]}).json()
    assert [r["seq"] for r in newer] == seqs[1:2]
    both = api.get("/api/v1/audit", viewer, params={"before": 3, "after": 1})
    assert "not both" in assert_problem(both, 400)["detail"]

    intact = api.get("/api/v1/audit/verify", viewer).json()
    head = commands.audit_checkpoint(api.caller)
    assert intact["ok"] is True
    assert intact["exit_code"] == 0
    assert intact["head_hash"] == head.hash
    assert intact["records"] == head.seq
    proven = api.get("/api/v1/audit/verify", viewer, params={"against": head.hash}).json()
    assert proven["ok"] is True
    stranger = api.get("/api/v1/audit/verify", viewer, params={"against": "f" * 64}).json()
    assert stranger["ok"] is False
    for against in ("", "not-a-hash"):
        response = api.get("/api/v1/audit/verify", viewer, params={"against": against})
        assert "against" in assert_problem(response, 400)["detail"]

    with api.store.session() as session:
        victim = session.query(AuditRow).filter(AuditRow.subject == "flag:b").one()
        seq = victim.seq
        session.execute(
            text("UPDATE audit SET actor = 'mallory' WHERE id = :id"), {"id": victim.id}
        )
    broken = api.get("/api/v1/audit/verify", viewer).json()
    assert broken["ok"] is False
    assert broken["exit_code"] == 1
    assert broken["bad_seq"] == seq
    assert broken["problem"]
    assert_no_secrets(api)


def test_a_checkpoint_needs_admin_and_names_the_head(serve: Any) -> None:
    api = serve()
    commands.flags.set_flag(api.caller, "a", FlagChange(enabled=True))
    (answer,) = allowed(api, "POST", "/api/v1/audit/checkpoint", None, {"admin"})
    checkpoint = answer.json()
    head = commands.audit_checkpoint(api.caller)  # the refusals before it are records too
    assert checkpoint == head.to_json()
    assert len(checkpoint["hash"]) == 64
    verified = api.get("/api/v1/audit/verify", api.token("viewer"), params={"against": head.hash})
    assert verified.json()["ok"] is True
    assert_no_secrets(api)


# --- outbox --------------------------------------------------------------------------------
def queue(api: Api, route: str, status: str, error: str = "", at: float | None = None) -> int:
    """An outbox event in ``status``; its payload holds a webhook URL with its token."""
    with api.store.session() as session:
        row = outbox.enqueue(
            session,
            route,
            f"run:{route}",
            "run.finished",
            {"webhook_url": TOKEN_URL, "headers": {"Authorization": "Bearer hdr-s3cret"}},
        )
        row.status, row.last_error = status, error
        if status != "pending":
            row.attempts = 3
        if at is not None:
            row.created_at = at
        return row.id


def test_the_outbox_lists_without_secrets_and_retries_by_id(serve: Any) -> None:
    api = serve()
    api.secrets += ["T0KEN-in-the-path", "s1gnature-in-query", "hdr-s3cret"]
    viewer, operator = api.token("viewer"), api.token("operator")
    pending = queue(api, "itsm", "pending")
    dead = queue(api, "notify:ops", "dead", f"ConnectError: cannot reach {TOKEN_URL} (refused)")
    sent = queue(api, "itsm", "sent")
    tested = queue(api, "notify-test:ops", "dead", "HTTP 404 from https://hooks.example.com/")

    listed = api.get("/api/v1/outbox", viewer).json()
    assert [e["id"] for e in listed] == [tested, sent, dead, pending]
    by_id = {e["id"]: e for e in listed}
    assert by_id[dead]["last_error"] == (
        "ConnectError: cannot reach https://hooks.example.com/*** (refused)"
    )
    assert by_id[tested]["last_error"] == "HTTP 404 from https://hooks.example.com"
    assert set(by_id[pending]) == {
        "id", "route", "stream", "key", "change_id", "run_id", "event", "status", "attempts",
        "last_error", "ref", "created_at", "sent_at",
    }  # fmt: skip
    assert [e["id"] for e in api.get("/api/v1/outbox", viewer, params={"status": "dead"}).json()]
    assert [
        e["id"] for e in api.get("/api/v1/outbox", viewer, params={"route": "itsm"}).json()
    ] == [sent, pending]
    both = {"status": "pending", "route": "itsm"}
    assert [e["id"] for e in api.get("/api/v1/outbox", viewer, params=both).json()] == [pending]
    bad = assert_problem(api.get("/api/v1/outbox", viewer, params={"status": "lost"}), 400)
    assert "lost" in bad["detail"]
    assert "dead" in bad["hint"]

    retried = api.post(f"/api/v1/outbox/{dead}/retry", operator)
    assert retried.status_code == 200, retried.text
    assert (retried.json()["id"], retried.json()["status"], retried.json()["attempts"]) == (
        dead,
        "pending",
        0,
    )
    assert "***" in retried.json()["last_error"]
    (record,) = api.audited("outbox.requeued")
    assert (record.actor, record.subject) == ("operator-bot", f"outbox:{dead}")

    done = assert_problem(api.post(f"/api/v1/outbox/{sent}/retry", operator), 409)
    assert "delivered already" in done["detail"]
    assert_problem(api.post("/api/v1/outbox/999999/retry", operator), 404)
    assert_problem(api.post("/api/v1/outbox/nope/retry", operator), 422)
    needs_route = assert_problem(api.post(f"/api/v1/outbox/{tested}/retry", operator), 409)
    assert "?route=notify-test:ops" in needs_route["hint"]
    wrong = f"/api/v1/outbox/{pending}/retry?route=notify:ops"
    assert "queued for route 'itsm'" in assert_problem(api.post(wrong, operator), 409)["detail"]
    path = f"/api/v1/outbox/{tested}/retry?route=notify-test:ops"
    assert api.post(path, operator).json()["status"] == "pending"
    assert len(api.audited("outbox.requeued")) == 2
    assert_no_secrets(api)


def test_retrying_an_event_needs_operate(serve: Any) -> None:
    api = serve()
    dead = queue(api, "itsm", "dead", "HTTP 500")
    answers = allowed(api, "POST", f"/api/v1/outbox/{dead}/retry", None, {"operator", "admin"})
    assert [a.json()["status"] for a in answers] == ["pending", "pending"]
    assert [r.actor for r in api.audited("outbox.requeued")] == ["operator-bot", "admin-bot"]
    with api.store.session() as session:
        row = session.get(OutboxRow, dead)
        assert row is not None
        assert row.status == "pending"


# --- snapshots -----------------------------------------------------------------------------
def snapshot_plan(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "releases-v1").mkdir(exist_ok=True)
    if not (folder / "current").is_symlink():
        (folder / "current").symlink_to("releases-v1")
    plan = folder / "web.yaml"
    plan.write_text(SNAPPED)
    monkeypatch.setenv("BACKOUT_TEST_SNAPSHOT_TOKEN", SNAP_SECRET)
    return plan


def test_snapshots_read_as_the_cli_shows_them(
    serve: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = serve()
    api.secrets.append(SNAP_SECRET)
    viewer = api.token("viewer")
    plan = snapshot_plan(tmp_path / "plans", monkeypatch)
    assert api.get("/api/v1/services", viewer).json() == []
    first = commands.snapshot(api.caller, plan, telemetry_window=0.1)
    second = commands.snapshot(api.caller, plan, telemetry_window=0.1)
    assert second.values == {"release": "releases-v1", "token": "***"}

    assert api.get("/api/v1/services", viewer).json() == ["web"]
    listed = api.get("/api/v1/snapshots", viewer, params={"service": "web"}).json()
    assert listed == [s.to_json() for s in commands.snapshots(api.caller, "web")]
    assert [s["snapshot_id"] for s in listed] == [second.snapshot_id, first.snapshot_id]
    newest = api.get("/api/v1/snapshots", viewer, params={"service": "web", "limit": 1}).json()
    assert [s["snapshot_id"] for s in newest] == [second.snapshot_id]
    assert api.get("/api/v1/snapshots", viewer, params={"service": "nothing"}).json() == []
    shown = api.get(f"/api/v1/snapshots/{first.snapshot_id}", viewer).json()
    assert shown == commands.snapshot_show(api.caller, "web", first.snapshot_id).to_json()
    assert shown["values"] == {"release": "releases-v1", "token": "***"}

    missing = assert_problem(api.get("/api/v1/snapshots", viewer), 400)
    assert "service" in missing["detail"]
    assert "web" in missing["hint"]
    assert_problem(api.get("/api/v1/snapshots/999999", viewer), 404)
    assert_problem(api.get("/api/v1/snapshots/latest", viewer), 422)
    assert_problem(api.get("/api/v1/snapshots", viewer, params={"service": "web", "limit": 0}), 422)
    assert_no_secrets(api)


def test_a_snapshot_is_taken_of_a_plan_the_server_offers(
    serve: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans = tmp_path / "plans"
    snapshot_plan(plans, monkeypatch)
    api = serve(plans=plans)
    api.secrets.append(SNAP_SECRET)
    body = {"plan": "web", "telemetry_window": 0.1}
    answers = allowed(api, "POST", "/api/v1/snapshots", body, {"operator", "admin"})
    assert [a.status_code for a in answers] == [201, 201]
    taken = [a.json() for a in answers]
    assert [t["values"] for t in taken] == [{"release": "releases-v1", "token": "***"}] * 2
    listed = commands.snapshots(api.caller, "web")
    assert [s.snapshot_id for s in listed] == [t["snapshot_id"] for t in reversed(taken)]
    assert [s.actor for s in listed] == ["admin-bot", "operator-bot"]
    records = api.audited("snapshot.taken")
    assert [r.actor for r in records] == ["operator-bot", "admin-bot"]

    operator = api.token("operator")
    unknown = assert_problem(api.post("/api/v1/snapshots", operator, json={"plan": "nope"}), 404)
    assert "web" in unknown["hint"]  # the plans it offers
    escape = api.post("/api/v1/snapshots", operator, json={"plan": "../web"})
    assert_problem(escape, 404)
    assert_problem(api.post("/api/v1/snapshots", operator, json={}), 422)
    late = {"plan": "web", "telemetry_window": 0}
    assert_problem(api.post("/api/v1/snapshots", operator, json=late), 422)
    assert len(api.audited("snapshot.taken")) == 2
    assert_no_secrets(api)


def test_a_server_without_plans_takes_no_snapshot(serve: Any) -> None:
    api = serve()
    problem = assert_problem(
        api.post("/api/v1/snapshots", api.token("operator"), json={"plan": "web"}), 404
    )
    assert "offers no plans" in problem["detail"]
    assert "--plans" in problem["hint"]


# --- the live figures of /metrics ----------------------------------------------------------
def scrape(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = api.get("/metrics", api.token("viewer"))
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def sample(figures: dict[Any, float], name: str, **labels: str) -> float | None:
    return figures.get((name, tuple(sorted(labels.items()))))


def step(seconds: float | None, outcome: str = "succeeded") -> tuple[str, dict[str, Any]]:
    data: dict[str, Any] = {"outcome": outcome, "summary": "ok", "output": ""}
    if seconds is not None:
        data["duration_s"] = seconds
    return ("step_finished", data)


def test_metrics_show_the_backlog_leases_steps_and_triggers(serve: Any) -> None:
    api = serve()
    now = time.time()
    empty = scrape(api)
    assert not [key for key in empty if key[0].startswith(("backout_outbox", "backout_lease"))]
    assert sample(empty, "backout_step_duration_seconds_count") is None

    queue(api, "itsm", "pending", at=now - 600)
    queue(api, "itsm", "pending", at=now - 60)
    queue(api, "itsm", "sending", at=now - 1200)
    queue(api, "notify:ops", "dead")
    queue(api, "itsm", "sent", at=now - 99999)
    with api.store.session() as session:
        session.add(LeaseRow(service="shop@prod", run_id="r1", owner="host:1:ab",
                             acquired_at=now, expires_at=now + 120, token=1))  # fmt: skip
        session.add(LeaseRow(service="cart", run_id="r2", owner="",
                             acquired_at=now - 900, expires_at=now - 800, token=4))  # fmt: skip
    verdicts = [
        ("trigger_evaluated", {"trigger": "errors", "verdict": "pass"}),
        ("trigger_evaluated", {"trigger": "errors", "verdict": "fail"}),
        ("trigger_fired", {"trigger": "errors", "trigger_kind": "threshold"}),
    ]
    add_run(api.store, service="shop@prod", at=now - 60, mode="watch", status="running",
            events=[step(0.3), step(4.0), step(None, "failed"), *verdicts])  # fmt: skip
    add_run(api.store, service="shop@prod", at=now - 3600,
            events=[step(45.0, "failed"), step(0.05)])  # fmt: skip
    # outside the window: a run that ended three days ago
    add_run(api.store, service="shop@prod", at=now - 3 * 86400,
            events=[step(7.0), ("trigger_fired", {"trigger": "errors"})])  # fmt: skip

    figures = scrape(api)
    backlog = "backout_outbox_backlog"
    assert sample(figures, backlog, route="itsm", status="pending") == 2
    assert sample(figures, backlog, route="itsm", status="sending") == 1
    assert sample(figures, backlog, route="notify:ops", status="dead") == 1
    assert sample(figures, backlog, route="itsm", status="sent") is None
    oldest = sample(figures, "backout_outbox_oldest_unsent_age_seconds", route="itsm")
    assert oldest is not None
    assert oldest >= 1200
    assert sample(figures, "backout_outbox_oldest_unsent_age_seconds", route="notify:ops") is None

    assert sample(figures, "backout_lease_held", service="shop", environment="prod") == 1
    assert sample(figures, "backout_lease_held", service="cart", environment="") == 0
    expiry = sample(figures, "backout_lease_expiry_seconds", service="shop", environment="prod")
    assert expiry is not None
    assert 0 < expiry <= 120
    assert sample(figures, "backout_lease_expiry_seconds", service="cart", environment="") is None

    ok = {"service": "shop", "environment": "prod", "outcome": "succeeded"}
    failed = {**ok, "outcome": "failed"}
    hist = "backout_step_duration_seconds"
    assert sample(figures, f"{hist}_count", **ok) == 3  # 0.3, 4.0, 0.05: not the old 7.0
    assert sample(figures, f"{hist}_sum", **ok) == pytest.approx(4.35)
    assert sample(figures, f"{hist}_bucket", **ok, le="0.1") == 1
    assert sample(figures, f"{hist}_bucket", **ok, le="0.5") == 2
    assert sample(figures, f"{hist}_bucket", **ok, le="5.0") == 3
    assert sample(figures, f"{hist}_bucket", **ok, le="+Inf") == 3
    assert sample(figures, f"{hist}_count", **failed) == 1  # the one without a duration: none
    assert sample(figures, f"{hist}_bucket", **failed, le="30.0") == 0
    assert sample(figures, f"{hist}_bucket", **failed, le="60.0") == 1

    where = {"service": "shop", "environment": "prod", "trigger": "errors"}
    changes = "backout_trigger_verdict_changes"
    assert sample(figures, changes, **where, verdict="pass") == 1
    assert sample(figures, changes, **where, verdict="fail") == 1
    assert sample(figures, "backout_triggers_fired", **where) == 1
    # the store's own figures are still there
    assert any(key[0] == "backout_runs_total" for key in figures)
    assert_no_secrets(api)


def test_every_new_endpoint_is_described_in_openapi(serve: Any) -> None:
    api = serve()
    spec = api.get("/api/v1/openapi.json").json()
    expected = {
        ("get", "/api/v1/flags"),
        ("get", "/api/v1/flags/{key}"),
        ("put", "/api/v1/flags/{key}"),
        ("get", "/api/v1/flags/{key}/history"),
        ("get", "/api/v1/audit"),
        ("get", "/api/v1/audit/verify"),
        ("post", "/api/v1/audit/checkpoint"),
        ("get", "/api/v1/outbox"),
        ("post", "/api/v1/outbox/{outbox_id}/retry"),
        ("get", "/api/v1/services"),
        ("get", "/api/v1/snapshots"),
        ("get", "/api/v1/snapshots/{snapshot_id}"),
        ("post", "/api/v1/snapshots"),
    }
    for method, path in sorted(expected):
        operation = spec["paths"][path][method]
        assert operation["summary"], (method, path)
        assert operation["tags"] in (["flags"], ["audit"], ["outbox"], ["snapshots"])
    schemas = spec["components"]["schemas"]
    for model in ("FlagChange", "SnapshotRequest"):
        for name, field in schemas[model]["properties"].items():
            assert field.get("description"), (model, name)
