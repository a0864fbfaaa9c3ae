"""The dashboard's forms and its other pages over real HTTP (the API's uvicorn setup, SQLite
and PostgreSQL): approve a deploy waiting at its checkpoint (a real deploy, moved on by the
form), resume and abandon a run that needs attention (made for real: its executor killed
after a non-idempotent step), approve a change; each refused to a role that may not (403,
audited as the API audits it), without the sign-in's CSRF token, and, for a destructive
action, without the run's id typed out; the changes, audit trail, flags and status pages
with the store's data, escaped."""

from __future__ import annotations

import contextlib
import re
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from backout import commands
from backout.commands.caller import Caller
from backout.errors import BackoutError
from backout.flags.model import FlagChange
from backout.reports import RunReport
from backout.server.auth import COOKIE
from backout.server.web import FLASH
from backout.store import audit
from tests.integration.change_helpers import PLAN as CHANGE_PLAN
from tests.integration.test_deploy import layout
from tests.integration.test_server import ROLES, Api, add_run, assert_no_secrets, serve
from tests.integration.test_server_events import run_id_of, stuck_run
from tests.integration.test_server_web import row_run
from tests.services import wait_until

__all__ = ["serve"]  # the fixture

HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
DEPLOY_TIMEOUT_S = 120.0
ACTION_IDS = ('id="approve"', 'id="resume"', 'id="abandon"', 'id="change-approve"')


def get(api: Api, path: str, token: str | None, flash: str | None = None) -> httpx.Response:
    """A page as a signed-in browser asks for it (the sign-in cookie, and a flash one)."""
    cookies = [f"{COOKIE}={token}"] if token else []
    if flash:
        cookies.append(f"{FLASH}={flash}")
    headers = {"Cookie": "; ".join(cookies)} if cookies else {}
    response = api.client.get(api.url + path, headers=headers, follow_redirects=False)
    api.client.cookies.clear()  # the test says which cookies each request carries
    api.bodies.append(response.text)
    return response


def post(
    api: Api, path: str, token: str | None, fields: dict[str, str], csrf: str | None
) -> httpx.Response:
    """A form posted as the browser posts it: the sign-in cookie and the form's fields."""
    data = dict(fields) | ({"csrf": csrf} if csrf is not None else {})
    headers = {"Cookie": f"{COOKIE}={token}"} if token else {}
    response = api.client.post(api.url + path, data=data, headers=headers, follow_redirects=False)
    api.client.cookies.clear()
    api.bodies.append(response.text)
    return response


def csrf_of(html: str) -> str:
    """The sign-in's CSRF token, as a signed-in page carries it (its forms, if any, too)."""
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', html)
    assert found, "the page has no CSRF token"
    for field in re.findall(r'name="csrf" value="([0-9a-f]*)"', html):
        assert field == found.group(1)
    return found.group(1)


def shows_actions(html: str) -> list[str]:
    return [button for button in ACTION_IDS if button in html]


def denied(api: Api) -> list[Any]:
    return api.audited("api.denied")


def assert_denied(api: Api, response: httpx.Response, before: int, role: str, path: str) -> None:
    """403 as a page, and one ``api.denied`` record naming who, what and where."""
    assert response.status_code == 403, response.text
    assert "text/html" in response.headers["content-type"]
    assert "needs the role" in response.text
    records = denied(api)
    assert len(records) == before + 1
    assert records[-1].actor == f"{role}-bot"
    assert (records[-1].details["method"], records[-1].details["path"]) == ("POST", path)


def assert_followed_with_flash(api: Api, response: httpx.Response, token: str, said: str) -> str:
    """A 303 to the page, which shows what was done once, then forgets it."""
    assert response.status_code == 303, response.text
    target = response.headers["location"]
    kept = response.cookies.get(FLASH)
    assert kept
    shown = get(api, target, token, kept)
    assert shown.status_code == 200
    flashed = re.search(r'<p id="flash" class="flash">([^<]*)</p>', shown.text)
    assert flashed
    assert flashed.group(1) == said
    assert f"{FLASH}=" in shown.headers["set-cookie"]  # dropped: shown once
    assert 'id="flash"' not in get(api, target, token).text
    return target


# --- a deploy's checkpoint ---------------------------------------------------------------------
def test_the_approve_form_moves_a_waiting_deploy_on(serve: Any, tmp_path: Path) -> None:
    api = serve()
    tokens = {role: api.token(role) for role in ROLES}
    plan = layout(tmp_path, hold="100ms", stages=1)
    plan.write_text(
        plan.read_text().replace("      hold: 100ms", "      hold: 100ms\n      approve: true")
    )
    deployer = replace(api.caller, actor="deployer", lease_ttl=5.0)
    commands.snapshot(deployer, plan, telemetry_window=0.3)
    finished: list[RunReport] = []
    thread = threading.Thread(
        target=lambda: finished.append(commands.deploy(deployer, plan)), daemon=True
    )
    thread.start()
    try:
        run_id = run_id_of(api, "shop")
        path = f"/runs/{run_id}"
        approver = tokens["approver"]
        wait_until(
            lambda: 'id="approve-form"' in get(api, path, approver).text,
            DEPLOY_TIMEOUT_S,
            "the deploy to wait at its checkpoint",
        )
        for role in ("viewer", "operator"):  # the checkpoint shows, no button to approve it
            shown = get(api, path, tokens[role])
            assert 'id="checkpoint"' in shown.text
            assert "stage 1's checkpoint" in shown.text
            assert shows_actions(shown.text) == []
        page = get(api, path, approver).text
        assert shows_actions(page) == ['id="approve"']
        form = re.search(r'<form id="approve-form" method="post" action="([^"]+)"', page)
        assert form
        assert form.group(1) == f"{path}/approve"

        fields = {"comment": f"looks fine {HOSTILE}"}
        operator = tokens["operator"]
        for role in ("viewer", "operator"):  # their own valid CSRF token, the wrong role
            before = len(denied(api))
            mine = csrf_of(get(api, path, tokens[role]).text)
            refused = post(api, f"{path}/approve", tokens[role], fields, mine)
            assert_denied(api, refused, before, role, f"{path}/approve")
            assert denied(api)[-1].details["permission"] == "approve"
        # the approver's cookie without the page's token: refused, and nothing done
        for csrf in (None, "", "0" * 64, csrf_of(get(api, path, operator).text)):
            stopped = post(api, f"{path}/approve", approver, fields, csrf)
            assert stopped.status_code == 403
            assert "did not come from this dashboard" in stopped.text
        assert api.audited("run.approve") == []
        assert 'id="approve-form"' in get(api, path, approver).text  # still waiting

        done = post(api, f"{path}/approve", approver, fields, csrf_of(page))
        assert_followed_with_flash(api, done, approver, "Approved stage 1: the deploy goes on.")
        thread.join(DEPLOY_TIMEOUT_S)
        assert finished
        assert (finished[0].run_id, finished[0].result) == (run_id, "promoted")
        kinds = [event.kind for event in commands.journal(api.caller, run_id)]
        assert "stage_approved" in kinds
        record = api.audited("run.approve")[-1]
        assert record.actor == "approver-bot"
        assert record.details == {"stage": 1, "comment": f"looks fine {HOSTILE}"}
        over = get(api, path, approver).text
        assert 'id="approve-form"' not in over  # nothing waits any more
        assert HOSTILE not in over
    finally:
        if thread.is_alive():  # a failed test: the deploy must not wait on
            with contextlib.suppress(BackoutError):
                commands.trigger(api.caller, "shop", "the test is over")
            thread.join(DEPLOY_TIMEOUT_S)
    assert_no_secrets(api)


# --- a run that needs attention --------------------------------------------------------------
def needing_attention(api: Api, folder: Path, service: str) -> str:
    """A run killed after a non-idempotent step's action, resumed once: it needs attention."""
    run_id = stuck_run(api, folder, service)
    assert commands.resume(api.caller, run_id).status == "needs_attention"
    return run_id


def test_resume_and_abandon_need_the_operator_a_csrf_token_and_the_id_typed_out(
    serve: Any, tmp_path: Path
) -> None:
    api = serve()
    tokens = {role: api.token(role) for role in ROLES}
    operator = tokens["operator"]
    ledger, books, cash = (
        needing_attention(api, tmp_path / s, s) for s in ("ledger", "books", "cash")
    )

    for role in ("viewer", "approver"):
        shown = get(api, f"/runs/{ledger}", tokens[role])
        assert 'id="attention"' in shown.text
        assert shows_actions(shown.text) == []
        assert 'id="resume-form"' not in shown.text
        assert 'id="abandon-form"' not in shown.text
    page = get(api, f"/runs/{ledger}", operator).text
    assert shows_actions(page) == ['id="resume"', 'id="abandon"']
    assert page.count('name="step-1"') == 4  # decide later, mark done, retry, skip
    assert 'name="step-2"' not in page  # it never started
    csrf = csrf_of(page)

    # a role that may not operate: 403, audited, nothing done
    for role in ("viewer", "approver"):
        for action, fields in (("resume", {"step-1": "done"}), ("abandon", {"reason": "r"})):
            before = len(denied(api))
            path = f"/runs/{ledger}/{action}"
            mine = csrf_of(get(api, f"/runs/{ledger}", tokens[role]).text)
            refused = post(api, path, tokens[role], {**fields, "confirm": ledger}, mine)
            assert_denied(api, refused, before, role, path)
            assert denied(api)[-1].details["permission"] == "operate"
    assert commands.status(api.caller, ledger).status == "needs_attention"

    # no CSRF token, or another: refused before anything is done
    reason = {"reason": f"checked by hand {HOSTILE}", "confirm": books}
    for wrong in (None, "0" * 64, mine):
        assert post(api, f"/runs/{books}/abandon", operator, reason, wrong).status_code == 403
    # the id not typed out as the page shows it: nothing done, the form shown again
    for typed in ("", books[:6], "yes", f"{books} "[:-2]):
        again = post(api, f"/runs/{books}/abandon", operator, {**reason, "confirm": typed}, csrf)
        assert again.status_code == 400
        assert "nothing was done" in again.text
        assert 'id="abandon-error"' in again.text
        assert ESCAPED in again.text  # the reason typed is kept, escaped
        assert HOSTILE not in again.text
    assert commands.status(api.caller, books).status == "needs_attention"
    assert api.audited("run.abandoned") == []
    no_reason = post(api, f"/runs/{books}/abandon", operator, {"confirm": books}, csrf)
    assert no_reason.status_code == 400

    given_up = post(api, f"/runs/{books}/abandon", operator, reason, csrf)
    assert_followed_with_flash(api, given_up, operator, "Abandoned: the run ended failed.")
    report = commands.status(api.caller, books)
    assert (report.status, report.result) == ("failed", "abandoned")
    record = api.audited("run.abandoned")[-1]
    assert (record.actor, record.subject) == ("operator-bot", f"run:{books}")
    assert record.details["reason"] == f"checked by hand {HOSTILE}"

    # retry and skip are destructive: the id typed out, or nothing is done
    journal_before = len(commands.journal(api.caller, ledger))
    for fields in ({"step-1": "retry"}, {"step-1": "skip", "confirm": cash}, {"step-1": "explode"}):
        again = post(api, f"/runs/{ledger}/resume", operator, fields, csrf)
        assert again.status_code == 400
        assert 'id="resume-error"' in again.text
    assert len(commands.journal(api.caller, ledger)) == journal_before
    assert (tmp_path / "ledger" / "effects").read_text() == "once\n"

    # mark done is not: the step took effect, so it is not run again
    done = post(api, f"/runs/{ledger}/resume", operator, {"step-1": "done"}, csrf)
    assert_followed_with_flash(api, done, operator, "Resumed: the run is now succeeded.")
    assert commands.status(api.caller, ledger).status == "succeeded"
    assert (tmp_path / "ledger" / "effects").read_text() == "once\n"
    decided = [e for e in commands.journal(api.caller, ledger) if e.kind == "operator_decision"]
    assert decided[-1].data["actor"] == "operator-bot"

    # a page drawn by another server of the store (behind one load balancer) posts here
    other = serve()
    cash_csrf = csrf_of(get(other, f"/runs/{cash}", operator).text)
    skipped = post(
        api, f"/runs/{cash}/resume", operator, {"step-1": "skip", "confirm": cash}, cash_csrf
    )
    assert skipped.status_code == 303, skipped.text
    report = commands.status(api.caller, cash)
    assert (report.status, report.steps[0].status) == ("succeeded", "skipped")
    assert (tmp_path / "cash" / "effects").read_text() == "once\n"
    assert_no_secrets(api)


def test_a_form_without_a_sign_in_goes_to_it_and_an_open_servers_anonymous_is_refused(
    serve: Any,
) -> None:
    waiting = [("checkpoint_started", {"stage": 0, "approve": True})]
    closed = serve()
    gated = row_run(closed, service="cart", mode="deploy", status="running", events=waiting)
    path = f"/runs/{gated}/approve"
    away = post(closed, path, None, {"comment": "hi"}, None)
    assert away.status_code == 303
    assert away.headers["location"] == f"/login?next=%2Fruns%2F{gated}"
    revoked = post(closed, path, "bo_" + "x" * 40, {"comment": "hi"}, "0" * 64)
    assert revoked.status_code == 303
    assert closed.audited("run.approve") == []

    opened = serve(open_access=True)
    gated = row_run(opened, service="cart", mode="deploy", status="running", events=waiting)
    shown = get(opened, f"/runs/{gated}", None)
    assert 'id="checkpoint"' in shown.text
    assert shows_actions(shown.text) == []
    refused = post(opened, f"/runs/{gated}/approve", None, {"comment": "hi"}, None)
    assert refused.status_code == 403
    assert opened.audited("api.denied")[-1].actor == "anonymous"
    assert opened.audited("run.approve") == []
    # the API's own actions still take no cookie, CSRF token or not
    approver = opened.token("approver")
    api_path = f"/api/v1/runs/{gated}/approve"
    headers = {"Cookie": f"{COOKIE}={approver}"}
    assert opened.post(api_path, json={"comment": "c"}, headers=headers).status_code == 403
    assert opened.audited("run.approve") == []
    # a script posts the dashboard's form with a bearer header: no CSRF token to carry
    by_header = opened.post(
        f"/runs/{gated}/approve", approver, data={"comment": "c"}, follow_redirects=False
    )
    opened.client.cookies.clear()
    assert by_header.status_code == 303
    assert opened.audited("run.approve")[-1].actor == "approver-bot"
    assert_no_secrets(opened)


# --- changes --------------------------------------------------------------------------------
def test_the_change_pages_and_their_approve_form(serve: Any, tmp_path: Path) -> None:
    api = serve()
    plan = tmp_path / "plan.yaml"
    plan.write_text(CHANGE_PLAN)
    made = commands.changes.create(Caller(api.store, "alice"), plan, f"Deploy web {HOSTILE}")
    other = commands.changes.create(Caller(api.store, "carol"), plan, "Second change")
    viewer = api.token("viewer")
    bob = api.token("approver", "bob")
    alice = api.token("approver", "alice")
    operator = api.token("operator")

    listing = get(api, "/changes", viewer)
    assert listing.status_code == 200
    assert re.findall(r'data-change="(\d+)"', listing.text) == [str(other.id), str(made.id)]
    assert HOSTILE not in listing.text
    assert f"Deploy web {ESCAPED}" in listing.text
    assert 'href="/changes"' in listing.text  # in the nav of every page
    assert get(api, "/changes?status=planned", viewer).text.count('class="change-row"') == 2
    assert get(api, "/changes?status=approved", viewer).text.count('class="change-row"') == 0
    assert get(api, "/changes?status=dancing", viewer).status_code == 400

    path = f"/changes/{made.id}"
    shown = get(api, path, viewer)
    assert shown.status_code == 200
    assert HOSTILE not in shown.text
    checks = commands.changes.gate(api.caller, made.id).checks
    assert shown.text.count('class="gate-check"') == len(checks)
    for check in checks:
        assert check.name in shown.text
    assert "No one has decided on it yet." in shown.text
    assert "The plan was never rehearsed." in shown.text
    assert shows_actions(shown.text) == []
    assert shows_actions(get(api, path, operator).text) == []
    page = get(api, path, bob).text
    assert shows_actions(page) == ['id="change-approve"']

    for role, token in (("viewer", viewer), ("operator", operator)):
        before = len(denied(api))
        mine = csrf_of(get(api, path, token).text)
        refused = post(api, f"{path}/approve", token, {"comment": "ok"}, mine)
        assert_denied(api, refused, before, role, f"{path}/approve")
    assert post(api, f"{path}/approve", bob, {"comment": "ok"}, None).status_code == 403
    # the requester may not approve their own change: the verb says so on the page
    own = post(
        api, f"{path}/approve", alice, {"comment": "mine"}, csrf_of(get(api, path, alice).text)
    )
    assert own.status_code == 403
    assert f"alice requested change {made.id} and cannot decide on it" in own.text
    assert commands.changes.show(api.caller, made.id).approvals == []

    done = post(api, f"{path}/approve", bob, {"comment": f"fine {HOSTILE}"}, csrf_of(page))
    now = commands.changes.show(api.caller, made.id)
    assert_followed_with_flash(api, done, bob, f"Approved change {made.id}: it is {now.status}.")
    assert [(a["actor"], a["comment"]) for a in now.approvals] == [("bob", f"fine {HOSTILE}")]
    run = commands.run(Caller(api.store, "operator"), plan, change_id=made.id)
    after = get(api, path, viewer).text
    assert after.count('class="approval-row"') == 1
    assert f"fine {ESCAPED}" in after
    assert f'<a href="/runs/{run.run_id}">{run.run_id}</a>' in after
    assert HOSTILE not in after
    for missing in ("/changes/999", "/changes/abc"):
        assert get(api, missing, viewer).status_code == 404
    assert_no_secrets(api)


# --- the audit trail, flags, the status page ----------------------------------------------------
def test_the_audit_page_pages_newest_first_and_says_whether_the_chain_holds(serve: Any) -> None:
    api = serve()
    viewer = api.token("viewer")
    with api.store.session() as session:
        for n in range(5):
            audit.append(session, "tester", f"test.step{n % 2}", f"thing:{n}", {"note": HOSTILE})
    every = [entry.seq for entry in commands.audit_log(api.caller)][::-1]

    first = get(api, "/audit", viewer)
    assert first.status_code == 200
    assert [int(s) for s in re.findall(r'class="audit-row" data-seq="(\d+)"', first.text)] == every
    assert "The chain holds" in first.text
    assert f"{len(every)} records" in first.text
    assert HOSTILE not in first.text
    seen: list[int] = []
    path: str | None = "/audit?limit=2"
    while path:
        response = get(api, path, viewer)
        assert response.status_code == 200
        seen += [int(s) for s in re.findall(r'data-seq="(\d+)"', response.text)]
        found = re.search(r'<a href="([^"]+)" rel="next">', response.text)
        path = found.group(1).replace("&amp;", "&") if found else None
    assert seen == every
    # and back to the newest by the "Newer" links, a page at a time
    back: list[int] = []
    while path is None or path:
        response = get(api, path or "/audit?limit=2&before=2", viewer)
        back += [int(s) for s in re.findall(r'data-seq="(\d+)"', response.text)]
        found = re.search(r'<a href="([^"]+)" rel="prev">', response.text)
        path = found.group(1).replace("&amp;", "&") if found else ""
    assert sorted(back, reverse=True) == every
    only = get(api, "/audit?action=test.step1", viewer).text
    assert re.findall(r"<td>(thing:\d)</td>", only) == ["thing:3", "thing:1"]
    assert get(api, "/audit?before=0", viewer).status_code == 400

    with api.store.session() as session:
        session.execute(text("UPDATE audit SET actor = 'mallory' WHERE seq = 2"))
    broken = get(api, "/audit", viewer).text
    assert "The chain is broken" in broken
    assert "at record 2" in broken


def test_the_flags_page_shows_each_flags_state(serve: Any) -> None:
    api = serve()
    viewer = api.token("viewer")
    assert "No flags in this store" in get(api, "/flags", viewer).text
    commands.flags.set_flag(api.caller, "new-checkout", FlagChange(enabled=True, percentage=25))
    commands.flags.set_flag(api.caller, "dark-mode", FlagChange(enabled=False))
    shown = get(api, "/flags", viewer).text
    rows = re.findall(r'<tr class="flag-row" data-flag="([^"]+)">(.*?)</tr>', shown, re.S)
    assert [key for key, _ in rows] == [f.key for f in commands.flags.list_flags(api.caller)]
    cells = dict(rows)
    assert 'badge-succeeded">on<' in cells["new-checkout"]
    assert "25%" in cells["new-checkout"]
    assert ">off<" in cells["dark-mode"]
    assert "admin" in cells["dark-mode"]  # who changed it


def test_the_status_page_is_built_from_the_store_at_each_request(serve: Any) -> None:
    api = serve()
    viewer = api.token("viewer")
    add_run(api.store, service="shop")
    quiet = get(api, "/status", viewer)
    assert quiet.status_code == 200
    assert "All Systems Operational" in quiet.text
    assert "default-src 'none'" in quiet.headers["content-security-policy"]
    commands.incident_update(api.caller, "shop", "investigating", f"Checkout is slow {HOSTILE}")
    commands.incident_update(api.caller, "shop", "identified", "a team note", internal=True)
    live = get(api, "/status", viewer).text
    assert "All Systems Operational" not in live
    assert f"Checkout is slow {ESCAPED}" in live
    assert "a team note" not in live  # internal: never on the page
    commands.incident_update(api.caller, "shop", "resolved", "Checkout is fast again.")
    assert "All Systems Operational" in get(api, "/status", viewer).text
    assert get(api, "/status", None).status_code == 303  # signed in, as every page
