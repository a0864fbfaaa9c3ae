"""Scheduled maintenance on the status page, on SQLite and PostgreSQL: an approved change
with a window, of a service whose `status_page.maintenance` is true, is announced in
status.json (Statuspage's `scheduled_maintenances` shape, checked against the schema) and
on the page; while its window is open the component is under maintenance, unless an open
incident says worse; nothing of an internal service, of a service that did not ask, or of
a change not approved, is shown."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

from jsonschema import Draft202012Validator

from backout import commands
from backout.statuspage.page import load_state, maintenance_status
from backout.statuspage.summary import summary
from backout.statuspage.visibility import publish
from tests.callers import caller
from tests.integration.statuspage_plans import settings, write_plan

SCHEMA = json.loads(
    (Path(__file__).parents[1] / "data" / "statuspage_summary.schema.json").read_text()
)
ANNOUNCED = "status_page:\n  component: Checkout\n  maintenance: true\n"
HIDDEN = "status_page:\n  component: Vault\n  internal: true\n  maintenance: true\n"


def window(start: float, end: float) -> str:
    def text(at: float) -> str:
        return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")

    return f"{text(start)}..{text(end)}"


def test_the_status_of_a_change_window() -> None:
    assert maintenance_status("approved", 100, 200, 50) == "scheduled"
    assert maintenance_status("approved", 100, 200, 100) == "in_progress"
    assert maintenance_status("approved", 100, 200, 200) is None  # passed unused
    assert maintenance_status("in_progress", 100, 200, 500) == "in_progress"  # running late
    for status in ("planned", "rejected", "completed", "backed_out", "failed"):
        assert maintenance_status(status, 100, 200, 150) is None


def test_an_approved_window_is_announced(store_url: str, tmp_path: Path) -> None:
    alice = caller(settings(store_url, actor="alice"))
    bob = caller(settings(store_url, actor="bob"))
    shop = write_plan(tmp_path, name="shop", risk="low", section=ANNOUNCED)
    vault = write_plan(tmp_path, name="vault", risk="low", section=HIDDEN)
    quiet = write_plan(tmp_path, name="search", risk="low")
    for plan in (shop, vault, quiet):
        commands.run(alice, plan)  # each service is on the page (its plan's section)
    start = time.time() + 3600
    end = start + 5400
    shown = commands.changes.create(alice, shop, "Database upgrade", window=window(start, end))
    assert commands.changes.approve(bob, shown.id).status == "approved"
    hidden = commands.changes.create(alice, vault, "Vault keys", window=window(start, end))
    commands.changes.approve(bob, hidden.id)
    unasked = commands.changes.create(alice, quiet, "Reindex", window=window(start, end))
    commands.changes.approve(bob, unasked.id)
    commands.changes.create(alice, shop, "Not approved yet", window=window(start, end))

    out = tmp_path / "site"
    commands.status_page_build(alice, out, "Acme status")
    status = json.loads((out / "status.json").read_text())
    Draft202012Validator(SCHEMA).validate(status)
    [maintenance] = status["scheduled_maintenances"]
    assert maintenance["name"] == "Database upgrade"
    assert maintenance["status"] == "scheduled"
    assert maintenance["impact"] == "maintenance"
    assert maintenance["scheduled_for"].startswith(
        dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    )
    assert [c["name"] for c in maintenance["components"]] == ["Checkout"]
    checkout = next(c for c in status["components"] if c["name"] == "Checkout")
    assert checkout["status"] == "operational"  # not yet
    page = (out / "index.html").read_text()
    assert "Scheduled maintenance" in page
    assert "Database upgrade" in page
    for withheld in ("Vault", "Reindex", "Not approved yet"):
        assert withheld not in page
        assert withheld not in json.dumps(status)

    # while the window is open the component is under maintenance
    with alice.store.session() as session:
        during = load_state(session, start + 60, days=7)
    open_page, _ = publish(during, "Acme status")
    document = summary(open_page)
    [maintenance] = document["scheduled_maintenances"]
    assert maintenance["status"] == "in_progress"
    checkout = next(c for c in document["components"] if c["name"] == "Checkout")
    assert checkout["status"] == "under_maintenance"
    assert document["status"]["indicator"] == "none"  # planned work is not an outage

    # an open incident says worse than maintenance
    commands.incident_update(alice, "shop", "identified", "Checkout fails", "major_outage")
    with alice.store.session() as session:
        during = load_state(session, start + 60, days=7)
    document = summary(publish(during, "Acme status")[0])
    checkout = next(c for c in document["components"] if c["name"] == "Checkout")
    assert checkout["status"] == "major_outage"

    # after the window, an approved change that never started is no longer announced
    with alice.store.session() as session:
        after = load_state(session, end + 1, days=7)
    assert summary(publish(after, "Acme status")[0])["scheduled_maintenances"] == []
