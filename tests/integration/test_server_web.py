"""The dashboard over real HTTP (the API's uvicorn setup, SQLite and PostgreSQL): sign-in
and its cookie, redirects without it, the runs list (filters, pages), the run page
(steps, checks, trigger evidence, timeline, chart), escaping, no secrets; the live part at
the HTTP level (the run's event stream read with the sign-in cookie); and the run page in
headless Chromium (an open server on loopback: no cookie to give the browser)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select, update

from backout.plans import load_plan
from backout.server.auth import COOKIE
from backout.store.models import RunRow
from tests.integration.test_server import PLAN, Api, add_run, assert_no_secrets, real_run, serve
from tests.integration.test_status_page_browser import browse, chromium
from tests.png import read_png

__all__ = ["chromium", "serve"]  # fixtures

HOSTILE = "<script>alert(1)</script>"
SECRET = "hunter2-never-on-a-page"
TRIGGER = {
    "trigger": "errors",
    "trigger_kind": "threshold",
    "summary": "error rate 0.2 above 0.05",
    "evidence": {"value": 0.2, "above": 0.05, "window": "1m"},
}


def sign_in(api: Api, token: str) -> httpx.Response:
    return api.post("/login", data={"token": token, "next": "/"}, follow_redirects=False)


def page(api: Api, path: str, token: str | None = None) -> httpx.Response:
    headers = {"Cookie": f"{COOKIE}={token}"} if token else None
    response = api.client.get(api.url + path, headers=headers, follow_redirects=False)
    api.bodies.append(response.text)
    return response


def row_run(api: Api, **kw: Any) -> str:
    """A run as a row (``add_run``), with a plan the run's report can be read from."""
    run_id = add_run(api.store, **kw)
    service = kw.get("service", "shop")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "plan.yaml"
        path.write_text(PLAN.replace("plan: shop", f"plan: {service}\nrto: 60s"))
        plan = load_plan(path).plan.model_dump(mode="json")
    with api.store.session() as session:
        doc = session.scalar(select(RunRow.plan_doc).where(RunRow.id == run_id))
        doc = {**doc, "plan": plan, "environment": "production"}
        session.execute(update(RunRow).where(RunRow.id == run_id).values(plan_doc=doc))
    return run_id


def triggered_run(api: Api, **kw: Any) -> str:
    """A watch that backed out on a threshold trigger, with the readings that led there."""
    readings = [
        ("trigger_evaluated", {**TRIGGER, "evidence": {"value": v, "above": 0.05}, "verdict": p})
        for v, p in ((0.01, "pass"), (0.02, "pass"), (0.2, "fail"))
    ]
    return row_run(api, mode="watch", events=[*readings, ("backout_started", TRIGGER)], **kw)


def test_sign_in_sets_a_strict_httponly_cookie_and_sign_out_clears_it(serve: Any) -> None:
    api = serve()
    viewer = api.token("viewer")

    assert page(api, "/").status_code == 303
    assert page(api, "/").headers["location"] == "/login?next=%2F"
    form = api.get("/login?next=/runs/x")
    assert form.status_code == 200
    assert 'name="token"' in form.text
    assert 'value="/runs/x"' in form.text
    assert "default-src 'none'" in form.headers["content-security-policy"]

    wrong = sign_in(api, "bo_" + "x" * 40)
    assert wrong.status_code == 401
    assert "that token is not valid" in wrong.text
    assert "set-cookie" not in wrong.headers
    assert sign_in(api, "").status_code == 401

    done = sign_in(api, viewer)
    assert done.status_code == 303
    assert done.headers["location"] == "/"
    cookie = done.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={viewer};")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain http here
    assert page(api, "/", viewer).status_code == 200

    # somewhere else is never where a sign-in leads
    away = api.post("/login", data={"token": viewer, "next": "//evil.example/"})
    assert away.headers["location"] == "/"

    out = api.post("/logout", follow_redirects=False)
    assert out.status_code == 303
    assert out.headers["location"] == "/login"
    assert re.search(rf'{COOKIE}="?"?;.*Max-Age=0', out.headers["set-cookie"])

    # a revoked token's cookie signs no one in any more
    from backout.commands.tokens import list_tokens, revoke_token

    token_id = next(t.id for t in list_tokens(api.caller) if t.actor == "viewer-bot")
    revoke_token(api.caller, token_id, "gone")
    assert page(api, "/", viewer).status_code == 303
    assert_no_secrets_in_pages(api, [viewer])


def assert_no_secrets_in_pages(api: Api, allowed_tokens: list[str]) -> None:
    """No page body carries a secret (the token appears only in Set-Cookie headers)."""
    for body in api.bodies:
        for secret in [SECRET, *api.secrets]:
            if secret in allowed_tokens and "set-cookie" in body.lower():
                continue
            assert secret not in body


def test_pages_need_a_sign_in_unless_the_server_is_open(serve: Any, tmp_path: Path) -> None:
    closed = serve()
    run_id = row_run(closed)
    for path in ("/", f"/runs/{run_id}", "/?status=failed"):
        response = page(closed, path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=")
    assert page(closed, f"/runs/{run_id}", "bo_" + "y" * 40).status_code == 303
    # a bearer header does as well as the cookie
    viewer = closed.token("viewer")
    assert closed.get(f"/runs/{run_id}", viewer).status_code == 200

    opened = serve(open_access=True)
    assert page(opened, "/").status_code == 200
    assert "anonymous" in page(opened, "/").text


def test_the_runs_list_shows_filters_and_pages_runs(serve: Any, tmp_path: Path) -> None:
    api = serve()
    viewer = api.token("viewer")
    old = [row_run(api, service="shop", at=1.8e9 + i) for i in range(3)]
    failed = row_run(api, service="cart", status="failed", at=1.8e9 + 10)
    watch = triggered_run(api, service="cart", at=1.8e9 + 20, status="running")

    listing = page(api, "/", viewer)
    assert listing.status_code == 200
    rows = re.findall(r'<tr class="run-row" data-run="([^"]+)"', listing.text)
    assert rows == [watch, failed, *reversed(old)]  # newest first
    assert f'href="/runs/{watch}"' in listing.text
    assert "errors" in listing.text  # the watch's trigger

    only = page(api, "/?service=cart&status=failed&mode=", viewer)
    assert re.findall(r'data-run="([^"]+)"', only.text) == [failed]
    assert 'value="cart"' in only.text
    watches = page(api, "/?mode=watch", viewer)
    assert re.findall(r'data-run="([^"]+)"', watches.text) == [watch]
    bad = page(api, "/?status=exploded", viewer)
    assert bad.status_code == 400
    assert "no run status is called" in bad.text

    seen: list[str] = []
    path: str | None = "/?limit=2"
    while path:
        response = page(api, path, viewer)
        assert response.status_code == 200
        seen += re.findall(r'data-run="([^"]+)"', response.text)
        found = re.search(r'<a href="([^"]+)" rel="next">', response.text)
        path = found.group(1).replace("&amp;", "&") if found else None
    assert seen == rows


def test_the_run_page_shows_steps_checks_trigger_and_timeline(serve: Any, tmp_path: Path) -> None:
    api = serve()
    viewer = api.token("viewer")
    run_id = real_run(api, tmp_path)
    shown = page(api, f"/runs/{run_id[:8]}", viewer)
    assert shown.status_code == 200
    assert '<span id="run-status" class="badge badge-succeeded">succeeded</span>' in shown.text
    assert shown.text.count('class="run-step"') == 1
    assert "switch back" in shown.text
    from backout import commands

    events = commands.journal(api.caller, run_id)
    assert shown.text.count('class="event-row"') == len(events)
    assert f'data-last-seq="{events[-1].seq}"' in shown.text
    assert 'src="/static/dashboard.js"' in shown.text
    _, lines = commands.explain_run(api.caller, run_id)
    assert lines
    assert lines[0].replace("'", "&#39;") in shown.text

    watch = triggered_run(api, status="running")
    live = page(api, f"/runs/{watch}", viewer)
    assert live.status_code == 200
    assert "error rate 0.2 above 0.05" in live.text  # the trigger's summary
    assert "<th>window</th>" in live.text  # its evidence
    assert 'class="chart chart-signal"' in live.text
    assert 'data-over="0"' in live.text

    missing = page(api, "/runs/nosuchrun", viewer)
    assert missing.status_code == 404
    assert "text/html" in missing.headers["content-type"]

    assert api.get("/static/dashboard.js").status_code == 200
    assert "text/css" in api.get("/static/dashboard.css").headers["content-type"]


def test_hostile_names_are_escaped_and_secrets_stay_out(serve: Any, tmp_path: Path) -> None:
    api = serve()
    viewer = api.token("viewer")
    secret_file = tmp_path / "token.txt"
    secret_file.write_text(SECRET)
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"""plan: hostile
secrets:
  api_token: {{file: {secret_file}}}
steps:
  - name: "{HOSTILE}"
    run: ["echo", "{{{{ secrets.api_token }}}} and {HOSTILE}"]
"""
    )
    from backout import commands

    run_id = commands.run(api.caller, plan).run_id
    shown = page(api, f"/runs/{run_id}", viewer)
    assert shown.status_code == 200
    assert HOSTILE not in shown.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown.text
    assert SECRET not in shown.text
    listing = page(api, "/", viewer)
    assert HOSTILE not in listing.text
    # a hostile filter value is shown back escaped
    echoed = page(api, "/?service=%22%3E%3Cscript%3Ex%3C%2Fscript%3E", viewer)
    assert "<script>x</script>" not in echoed.text
    api.secrets.append(SECRET)
    assert_no_secrets_in_pages(api, [])
    assert_no_secrets(api)


def test_the_event_stream_takes_the_cookie_for_the_live_page(serve: Any) -> None:
    """The page's script follows /api/v1/runs/{id}/events?after=<last seq> with the sign-in
    cookie; here the same request, from the seq the page shows, sees the next events."""
    api = serve()
    viewer = api.token("viewer")
    run_id = triggered_run(api, status="running")
    shown = page(api, f"/runs/{run_id}", viewer)
    last = int(re.search(r'data-last-seq="(\d+)"', shown.text).group(1))  # type: ignore[union-attr]

    from backout.store.models import EventRow

    with api.store.session() as session:
        for seq in (last + 1, last + 2):
            data = {**TRIGGER, "verdict": "fail"}
            session.add(
                EventRow(run_id=run_id, seq=seq, at=1.8e9, kind="trigger_evaluated", data=data)
            )
        session.execute(update(RunRow).where(RunRow.id == run_id).values(status="succeeded"))

    url = f"{api.url}/api/v1/runs/{run_id}/events?after={last}"
    with api.client.stream("GET", url, headers={"Cookie": f"{COOKIE}={viewer}"}) as stream:
        assert stream.status_code == 200
        body = "".join(stream.iter_text())  # the run is over: the stream ends
    ids = [int(i) for i in re.findall(r"^id: (\d+)$", body, re.M)]
    assert ids == [last + 1, last + 2]
    assert "event: trigger_evaluated" in body

    # the cookie reads, never writes: a POST with it alone is refused
    refused = api.client.post(
        f"{api.url}/api/v1/runs/{run_id}/abandon",
        json={"reason": "r"},
        headers={"Cookie": f"{COOKIE}={viewer}"},
    )
    assert refused.status_code == 401
    assert api.client.get(url, headers={"Cookie": f"{COOKIE}=bo_{'z' * 40}"}).status_code == 401


def test_the_run_page_in_a_browser(
    chromium: str,
    serve: Any,
    tmp_path: Path,
) -> None:
    api = serve(open_access=True)
    run_id = triggered_run(api, status="succeeded")
    url = f"{api.url}/runs/{run_id}"
    dom = browse_url(chromium, url, tmp_path, "--dump-dom")
    assert dom.count('class="event-row"') == 6  # created, started, 3 readings, backout
    assert 'class="chart chart-signal"' in dom
    assert 'class="signal-line"' in dom
    assert "error rate 0.2 above 0.05" in dom

    shot = tmp_path / "run.png"
    browse_url(chromium, url, tmp_path, f"--screenshot={shot}", "--window-size=1000,1400")
    width, height, pixels = read_png(shot)
    assert (width, height) == (1000, 1400)
    assert len(set(pixels)) > 10  # drawn, not a blank page


class _Address:
    """An http address where ``browse`` takes a file (it opens ``page.resolve().as_uri()``)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def resolve(self) -> _Address:
        return self

    def as_uri(self) -> str:
        return self.url


def browse_url(binary: str, url: str, workdir: Path, *how: str) -> str:
    return browse(binary, _Address(url), workdir, *how)  # type: ignore[arg-type]
