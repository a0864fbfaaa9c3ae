"""`backout status-page build` on SQLite and PostgreSQL: status.json in Statuspage's summary
shape (checked against a JSON Schema written from its documentation), a valid Atom 1.0
feed, a self-contained page, files replaced whole — and the visibility guard: nothing
marked internal, and nobody's name, reaches any file. The CLI verbs too."""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from backout import commands
from backout.cli import cli
from backout.commands import Caller
from backout.errors import UsageError
from backout.statuspage import FILES
from backout.store.models import IncidentRow
from tests.callers import caller
from tests.integration.statuspage_plans import FAIL, settings, write_plan

SCHEMA = json.loads(
    (Path(__file__).parents[1] / "data" / "statuspage_summary.schema.json").read_text()
)
ATOM = "{http://www.w3.org/2005/Atom}"
SECRETS = ("SECRET-NOTE-42", "LEDGER-SECRET", "Ledger internal", "ledger", "comms@example.com")
SHOP = "status_page:\n  component: Checkout\n  group: Shop\n  description: Paying for an order\n"
LEDGER = "status_page:\n  component: Ledger internal\n  internal: true\n"


def scenario(store_url: str, tmp_path: Path) -> Caller:
    """Checkout (grouped) has an open incident with an internal note among its updates,
    search an old resolved one, the internal ledger an open one; search is operational."""
    who = caller(settings(store_url, actor="comms@example.com"))
    commands.watch(who, write_plan(tmp_path, section=SHOP, step=FAIL), 30)  # major outage
    commands.incident_update(who, "shop", "identified", "SECRET-NOTE-42 db01", internal=True)
    commands.incident_update(who, "shop", "identified", "Payments <b>fail</b> & retry.")
    commands.run(who, write_plan(tmp_path, name="search"))
    commands.incident_update(who, "search", "investigating", "Search is slow.")
    old = commands.incident_update(who, "search", "resolved", "Search is fast again.")
    with who.store.session() as session:  # resolved 30 days ago: off a 7-day page
        row = session.get(IncidentRow, old.id)
        assert row is not None
        row.resolved_at = row.created_at = time.time() - 30 * 86400
    commands.run(who, write_plan(tmp_path, name="ledger", section=LEDGER))
    commands.incident_update(who, "ledger", "identified", "LEDGER-SECRET", "major_outage")
    return who


def test_the_page_the_summary_and_the_feed(store_url: str, tmp_path: Path) -> None:
    who = scenario(store_url, tmp_path)
    out = tmp_path / "site"
    report = commands.status_page_build(who, out, "Acme status", url="https://status.example")
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)  # no temporary file left
    assert (report.indicator, report.components, report.open_incidents) == ("critical", 2, 1)
    assert report.withheld == {"components": 1, "incidents": 1, "updates": 1}

    summary = json.loads((out / "status.json").read_text())
    Draft202012Validator(SCHEMA).validate(summary)
    assert summary["status"] == {"indicator": "critical", "description": "Major System Outage"}
    by_name = {c["name"]: c for c in summary["components"]}
    assert set(by_name) == {"Shop", "Checkout", "search"}
    assert by_name["Shop"]["group"] is True
    assert by_name["Shop"]["components"] == [by_name["Checkout"]["id"]]
    assert by_name["Checkout"]["group_id"] == by_name["Shop"]["id"]
    assert (by_name["Checkout"]["status"], by_name["search"]["status"]) == (
        "major_outage",
        "operational",
    )
    [incident] = summary["incidents"]  # unresolved only, as Statuspage's summary
    assert (incident["status"], incident["impact"]) == ("identified", "critical")
    assert incident["shortlink"] == f"https://status.example/#incident-{incident['id']}"
    bodies = [u["body"] for u in incident["incident_updates"]]  # newest first
    assert bodies[0] == "Payments <b>fail</b> & retry."
    assert len(bodies) == 3  # the fired, the failed, the public update; not the note

    recent = json.loads((out / "incidents.json").read_text())
    assert [i["status"] for i in recent["incidents"]] == ["identified"]  # 30 days is too old

    feed = ET.parse(out / "feed.atom").getroot()
    check_atom(feed, expected_entries=3)
    first = feed.find(f"{ATOM}entry")
    assert first is not None
    assert first.findtext(f"{ATOM}content") == "Identified — Payments <b>fail</b> & retry."

    html = (out / "index.html").read_text()
    assert "Payments &lt;b&gt;fail&lt;/b&gt; &amp; retry." in html  # autoescaped
    assert "Paying for an order" in html
    check_self_contained(html)


def check_atom(feed: ET.Element, expected_entries: int) -> None:
    """RFC 4287: a feed has an id, a title, an updated time and an author (here for every
    entry); each entry an id, a title, an updated time and content; ids are unique."""
    assert feed.tag == f"{ATOM}feed"
    for tag in ("id", "title", "updated"):
        assert feed.findtext(f"{ATOM}{tag}"), tag
    assert feed.findtext(f"{ATOM}author/{ATOM}name")
    entries = feed.findall(f"{ATOM}entry")
    assert len(entries) == expected_entries
    ids = [e.findtext(f"{ATOM}id") for e in entries]
    assert len(set(ids)) == len(ids)
    assert all(i and i.startswith("urn:uuid:") for i in ids)
    times = [e.findtext(f"{ATOM}updated") or "" for e in entries]
    assert times == sorted(times, reverse=True)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", t) for t in times)
    for entry in entries:
        assert entry.findtext(f"{ATOM}title")
        content = entry.find(f"{ATOM}content")
        assert content is not None
        assert content.get("type") == "text"


def check_self_contained(html: str) -> None:
    """Nothing is fetched: no script, no source, no stylesheet or font from elsewhere; the
    links are the files next to the page."""
    assert "<script" not in html.lower()
    assert not re.search(r"\bsrc\s*=|@import|url\(", html, re.IGNORECASE)
    assert set(re.findall(r'href="([^"]*)"', html)) == {"feed.atom", "status.json"}


def test_nothing_internal_reaches_any_file(store_url: str, tmp_path: Path) -> None:
    who = scenario(store_url, tmp_path)
    listed = json.dumps([i.to_json() for i in commands.incidents(who)])
    for secret in SECRETS:  # the operators see everything …
        assert secret in listed, secret
    out = tmp_path / "site"
    commands.status_page_build(who, out, "Acme status")
    for name in FILES:  # … the public nothing of it
        text = (out / name).read_text()
        found = [s for s in SECRETS if s.lower() in text.lower()]
        assert found == [], f"{name} publishes {found}"


def test_an_incident_opened_by_a_note_is_a_draft_until_its_first_public_update(
    store_url: str, tmp_path: Path
) -> None:
    who = caller(settings(store_url))
    commands.run(who, write_plan(tmp_path))
    draft = commands.incident_update(who, "shop", "investigating", "Looking.", internal=True)
    assert draft.internal
    out = tmp_path / "site"
    commands.status_page_build(who, out)
    assert json.loads((out / "status.json").read_text())["incidents"] == []
    public = commands.incident_update(who, "shop", "identified", "Checkout errors.")
    assert not public.internal
    commands.status_page_build(who, out)
    [shown] = json.loads((out / "status.json").read_text())["incidents"]
    assert [u["body"] for u in shown["incident_updates"]] == ["Checkout errors."]


def test_the_folder_must_be_a_folder(store_url: str, tmp_path: Path) -> None:
    who = caller(settings(store_url))
    commands.run(who, write_plan(tmp_path))
    in_the_way = tmp_path / "site"
    in_the_way.write_text("not a folder")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        commands.status_page_build(who, in_the_way)
    with pytest.raises(UsageError, match="--days must be more than 0"):
        commands.status_page_build(who, tmp_path / "other", days=0)
    empty = commands.status_page_build(who, tmp_path / "deep" / "site")  # made if missing
    assert (empty.indicator, empty.components, empty.open_incidents) == ("none", 1, 0)


def invoke(store_url: str, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--db", store_url, "--actor", "cli", *args], obj={})


def test_the_cli(store_url: str, tmp_path: Path) -> None:
    commands.run(caller(settings(store_url)), write_plan(tmp_path))
    update = ["incident", "update", "shop", "--status", "identified", "--message", "Down."]
    result = invoke(store_url, *update, "--component-status", "partial_outage", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["updates"][0]["actor"] == "cli"
    result = invoke(store_url, "incident", "update", "shop", "--status", "down", "--message", "x")
    assert result.exit_code == 2
    assert "'down' is not one of" in result.output
    result = invoke(store_url, "incident", "update", "nope", *update[3:])
    assert result.exit_code == 2
    assert "no run and no incident for service 'nope'" in result.output
    assert "known services: shop" in result.output
    listed = invoke(store_url, "incident", "list", "--open", "--service", "shop")
    assert listed.exit_code == 0, listed.output
    assert "Down." in listed.output
    as_json = json.loads(invoke(store_url, "incident", "list", "--json").output)
    assert [i["status"] for i in as_json] == ["identified"]
    out = tmp_path / "site"
    built = invoke(store_url, "status-page", "build", str(out), "--title", "Acme", "--json")
    assert built.exit_code == 0, built.output
    assert json.loads(built.output)["indicator"] == "major"
    (tmp_path / "file").write_text("")
    refused = invoke(store_url, "status-page", "build", str(tmp_path / "file"))
    assert refused.exit_code == 2
    assert "is a file, not a folder" in refused.output
