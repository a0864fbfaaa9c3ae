"""The status page's incidents on SQLite and PostgreSQL: real runs move them (a trigger
that fires on a real signal, a backout that works or fails), a person moves them by hand,
a quiet period resolves them, every move is audited, and rehearsals never touch them.
The migration that adds them goes up and down on both stores."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from backout import commands
from backout.errors import Conflict, NotFound, UsageError
from backout.reports import IncidentReport
from backout.statuspage import resolve_quiet
from backout.store.db import HEAD_REVISION, Store, _alembic_config
from backout.store.models import Base, IncidentRow, IncidentUpdateRow
from tests.callers import caller
from tests.integration.statuspage_plans import FAIL, settings, write_plan

TABLES = {IncidentRow.__tablename__, IncidentUpdateRow.__tablename__}
QUIET = "status_page:\n  component: Checkout\n  group: Shop\n  quiet: 10m\n"


def moves(report: IncidentReport) -> list[tuple[str, str]]:
    return [(u.status, u.component_status) for u in report.updates]


def test_a_trigger_opens_an_incident_and_a_verified_backout_moves_it_to_monitoring(
    store_url: str, tmp_path: Path
) -> None:
    who = caller(settings(store_url))
    plan = write_plan(tmp_path, section=QUIET)
    run = commands.watch(who, plan, 30)
    assert (run.status, run.result) == ("succeeded", "backed_out")
    [incident] = commands.incidents(who)
    assert (incident.service, incident.component, incident.status) == (
        "shop",
        "Checkout",
        "monitoring",
    )
    assert incident.run_id == run.run_id
    assert incident.impact == "major"  # a partial outage at its worst
    assert moves(incident) == [("identified", "partial_outage"), ("monitoring", "operational")]
    assert incident.updates[0].actor == "oncall"
    audited = commands.audit_log(who, action="incident.updated")
    assert [(a.subject, a.details["status"]) for a in audited] == [
        (f"incident:{incident.id}", "identified"),
        (f"incident:{incident.id}", "monitoring"),
    ]
    assert audited[0].details["trigger"] == "errors above 5"
    assert audited[0].details["run_id"] == run.run_id

    # the service breaks again while monitoring: the same incident goes back to identified
    (plan.parent / "errors.txt").write_text("50\n")
    again = commands.watch(who, plan, 30)
    assert again.result == "backed_out"
    [same] = commands.incidents(who)
    assert same.id == incident.id
    assert [m[0] for m in moves(same)] == ["identified", "monitoring"] * 2


def test_a_failed_backout_is_a_major_outage_and_stays_identified(
    store_url: str, tmp_path: Path
) -> None:
    who = caller(settings(store_url))
    plan = write_plan(tmp_path, step=FAIL)
    run = commands.watch(who, plan, 30)
    assert run.status == "failed"
    [incident] = commands.incidents(who, service="shop", open_only=True)
    assert incident.component == "shop"  # no `status_page:`: the service's own component
    assert moves(incident) == [("identified", "partial_outage"), ("identified", "major_outage")]
    assert incident.impact == "critical"
    assert "did not complete" in incident.updates[-1].message


def test_a_critical_plan_fires_as_a_major_outage_in_its_environment(
    store_url: str, tmp_path: Path
) -> None:
    who = caller(settings(store_url))
    plan = write_plan(tmp_path, risk="critical")
    text = plan.read_text() + "environments:\n  production: {}\n"
    plan.write_text(text)
    commands.watch(who, plan, 30, environment="production")
    [incident] = commands.incidents(who)
    assert (incident.service, incident.component) == ("shop@production", "shop (production)")
    assert moves(incident)[0] == ("identified", "major_outage")


def test_a_plain_backout_moves_an_open_incident_only(store_url: str, tmp_path: Path) -> None:
    who = caller(settings(store_url))
    plan = write_plan(tmp_path)
    commands.run(who, plan)
    assert commands.incidents(who) == []  # nobody declared one, and no trigger fired
    opened = commands.incident_update(who, "shop", "investigating", "Checkout is slow.")
    assert moves(opened) == [("investigating", "degraded_performance")]
    commands.run(who, plan)
    [incident] = commands.incidents(who)
    assert moves(incident)[-1] == ("monitoring", "operational")


def test_a_rehearsal_never_touches_the_status_page(store_url: str, tmp_path: Path) -> None:
    who = caller(settings(store_url))
    plan = write_plan(tmp_path, errors=0)
    drill = commands.rehearse(who, plan)
    assert drill.passed, drill.message
    assert commands.incidents(who) == []
    assert commands.audit_log(who, action="incident.updated") == []


def test_updates_by_hand(store_url: str, tmp_path: Path) -> None:
    who = caller(settings(store_url, actor="comms"))
    commands.run(who, write_plan(tmp_path, section=QUIET))
    first = commands.incident_update(
        who, "shop", "identified", "Payments fail.", "major_outage", title="Payments failing"
    )
    assert (first.title, first.component, first.impact) == (
        "Payments failing",
        "Checkout",
        "critical",
    )
    note = commands.incident_update(
        who, "shop", "identified", "DB failover at 12:03", internal=True
    )
    assert note.id == first.id
    assert note.updates[-1].internal
    assert note.updates[-1].component_status == "major_outage"  # as it was: not given
    with pytest.raises(Conflict, match="postmortem follows a resolved"):
        commands.incident_update(who, "shop", "postmortem", "Write-up.")
    done = commands.incident_update(who, "shop", "resolved", "Fixed.")
    assert (done.status, done.updates[-1].component_status) == ("resolved", "operational")
    assert done.resolved_at == done.updates[-1].at
    post = commands.incident_update(who, "shop", "postmortem", "What happened, and why.")
    assert (post.id, post.status) == (first.id, "postmortem")
    with pytest.raises(Conflict, match="no open incident to mark resolved"):
        commands.incident_update(who, "shop", "resolved", "Again?")
    audited = commands.audit_log(who, action="incident.updated")
    assert len(audited) == 4
    assert {a.actor for a in audited} == {"comms"}
    assert audited[1].details["internal"] is True


def test_bad_updates_say_what_is_wrong(store_url: str, tmp_path: Path) -> None:
    who = caller(settings(store_url))
    with pytest.raises(NotFound, match="no run and no incident for service 'shop'") as none:
        commands.incident_update(who, "shop", "identified", "Down.")
    assert "no runs yet" in none.value.hint
    commands.run(who, write_plan(tmp_path))
    with pytest.raises(NotFound) as unknown:
        commands.incident_update(who, "shp", "identified", "Down.")
    assert unknown.value.hint == "known services: shop"
    with pytest.raises(UsageError, match="unknown incident status 'down'") as status:
        commands.incident_update(who, "shop", "down", "Down.")
    assert "investigating, identified, monitoring, resolved, postmortem" in status.value.hint
    with pytest.raises(UsageError, match="unknown component status 'broken'"):
        commands.incident_update(who, "shop", "identified", "Down.", "broken")
    with pytest.raises(UsageError, match="no message"):
        commands.incident_update(who, "shop", "identified", "  ")
    with pytest.raises(NotFound):
        commands.incidents(who, service="shp")
    assert commands.incidents(who) == []  # nothing was written by the refused updates


def test_a_quiet_period_resolves_a_monitoring_incident(store_url: str, tmp_path: Path) -> None:
    who = caller(settings(store_url))
    commands.watch(who, write_plan(tmp_path, section=QUIET), 30)
    [incident] = commands.incidents(who)
    assert incident.status == "monitoring"
    quiet_until = incident.updated_at + 600
    with who.store.session() as session:
        assert resolve_quiet(session, quiet_until - 1) == []
    with who.store.session() as session:
        assert [r.id for r in resolve_quiet(session, quiet_until + 3600)] == [incident.id]
    [resolved] = commands.incidents(who)
    assert (resolved.status, resolved.resolved_at) == ("resolved", quiet_until)
    assert moves(resolved)[-1] == ("resolved", "operational")
    assert "No new problem for 10m" in resolved.updates[-1].message
    last = commands.audit_log(who, action="incident.updated")[-1]
    assert (last.details["status"], last.details["reason"]) == ("resolved", "quiet period")
    with who.store.session() as session:  # nothing left to resolve
        assert resolve_quiet(session, quiet_until + 7200) == []


def test_the_migration_goes_up_and_down(store_url: str) -> None:
    store = Store(store_url)
    try:
        store.open()
        assert store.revision() == HEAD_REVISION
        with store.engine.connect() as conn:  # the tables are as the models say
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert [d for d in diff if _table_of(d) in TABLES] == []
        config = _alembic_config()
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0007")
        assert not TABLES & set(sa.inspect(store.engine).get_table_names())
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
        assert set(sa.inspect(store.engine).get_table_names()) >= TABLES
    finally:
        store.dispose()


def _table_of(diff: object) -> str | None:
    """The table an alembic autogenerate difference is about."""
    item = diff[0] if isinstance(diff, list) else diff
    for part in item[1:] if isinstance(item, tuple) else ():
        if isinstance(part, sa.Table):
            return str(part.name)
        if isinstance(part, sa.Index) and part.table is not None:
            return str(part.table.name)
        if isinstance(part, str) and part in TABLES:
            return part
    return None
