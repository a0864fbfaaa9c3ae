"""``backout server``'s API over real HTTP: the app behind the uvicorn setup the CLI uses, on
a socket bound as the CLI binds it, in a thread of the test, on SQLite and PostgreSQL.
Tokens are made with the verbs; runs with the verbs, or as rows where a test needs many
(pagination) or a state only a long-running deploy reaches (a watch, a checkpoint).

``backout server`` as a process (start, SIGTERM, refusals) is in test_server_cli.py.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy import text

from backout import commands
from backout.commands.caller import Caller
from backout.commands.tokens import create_token, list_tokens, revoke_token
from backout.flags import listen as flag_listen
from backout.flags.guard import Limits
from backout.render import journal_json
from backout.server.app import create_app
from backout.server.events import Streams
from backout.server.listen import listen
from backout.server.plan_folder import PlanFolder
from backout.settings import Settings
from backout.store import audit
from backout.store.db import HEAD_REVISION, Store
from backout.store.models import AuditRow, EventRow, RunRow
from tests.services import wait_until

START_TIMEOUT_S = 30.0
PASSWORD = "s3cret-pw-never-shown"  # in the PostgreSQL URL: trust auth ignores it
PROBLEM = "application/problem+json"
_ids = itertools.count()

PLAN = """plan: shop
steps:
  - name: switch back
    run: ["true"]
"""


@dataclass
class Api:
    """A running server and a client; every response it got, for the secrets check."""

    url: str
    store: Store
    caller: Caller  # the admin's, for the verbs the tests call directly
    client: httpx.Client
    bodies: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)

    def request(
        self, method: str, path: str, token: str | None = None, **kw: Any
    ) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        response = self.client.request(method, self.url + path, headers=headers, **kw)
        self.bodies.append(response.text + json.dumps(dict(response.headers)))
        return response

    def get(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return self.request("GET", path, token, **kw)

    def post(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return self.request("POST", path, token, **kw)

    def token(self, role: str, actor: str | None = None) -> str:
        secret = create_token(self.caller, role, actor or f"{role}-bot", None).secret
        self.secrets.append(secret)
        return secret

    def audited(self, action: str) -> list[AuditRow]:
        with self.store.session() as session:
            return audit.log(session, action)


def with_password(url: str) -> str:
    if not url.startswith("postgresql"):
        return url
    parts = urlsplit(url)
    netloc = parts.netloc.replace("@", f":{PASSWORD}@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
def serve(store_url: str) -> Iterator[Any]:
    """``serve(open_access=False, plans=None)``: start the API on a free loopback port (with
    ``plans``, a folder of plans, as ``--plans``); stopped after."""
    started: list[tuple[Any, threading.Thread, Any, Store, httpx.Client, Streams]] = []

    def start(*, open_access: bool = False, plans: Path | None = None) -> Api:
        url = with_password(store_url)
        store = Store(url)
        store.open()
        settings = Settings(database_url=url, actor="server")
        listener = listen("127.0.0.1:0", open_access=open_access)
        streams = Streams()
        app = create_app(
            store, settings, open_access=open_access, streams=streams, plans=PlanFolder.of(plans)
        )
        server = flag_listen.make_server(app, Limits())
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [listener.sock]}, daemon=True
        )
        thread.start()
        client = httpx.Client(timeout=30)
        started.append((server, thread, listener, store, client, streams))
        wait_until(lambda: server.started, START_TIMEOUT_S, "the API server to start")
        api = Api(listener.url, store, Caller(store, "admin"), client)
        if PASSWORD in url:
            api.secrets.append(PASSWORD)
        return api

    yield start
    for server, thread, listener, store, client, streams in started:
        client.close()
        streams.stop()  # as the server's stop signal does: an open stream would hold the stop
        server.should_exit = True
        thread.join(START_TIMEOUT_S)
        listener.sock.close()
        store.dispose()


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:backout:problem:")
    assert body["title"]
    assert body["detail"]
    assert "Traceback" not in response.text
    return dict(body)


def assert_no_secrets(api: Api) -> None:
    assert api.secrets
    for body in api.bodies:
        for secret in api.secrets:
            assert secret not in body


def real_run(api: Api, tmp_path: Path) -> str:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    return commands.run(api.caller, plan).run_id


def add_run(
    store: Store,
    *,
    service: str = "shop",
    at: float = 1.8e9,
    status: str = "succeeded",
    mode: str = "backout",
    events: list[tuple[str, dict[str, Any]]] | None = None,
) -> str:
    """A run as a row (and its journal), for states the verbs reach only over minutes."""
    run_id = f"r{next(_ids):011d}"
    doc: dict[str, Any] = {"plan": {"plan": service}, "base_dir": "/tmp"}
    if mode != "backout":
        doc["mode"] = mode
    with store.session() as session:
        session.add(
            RunRow(
                id=run_id,
                plan=service,
                service=service,
                plan_file="plan.yaml",
                plan_version="v1",
                plan_doc=doc,
                mode=mode,
                status=status,
                actor="test",
                created_at=at,
                message="",
            )
        )
        session.flush()
        journal = [("run_created", {}), ("run_started", {}), *(events or [])]
        for seq, (kind, data) in enumerate(journal, start=1):
            session.add(EventRow(run_id=run_id, seq=seq, at=at, kind=kind, data=data))
    return run_id


# --- health --------------------------------------------------------------------------------
def test_health_and_readiness_need_no_token_and_readiness_checks_the_schema(serve: Any) -> None:
    api = serve()
    api.token("viewer")
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "schema": HEAD_REVISION}
    with api.store.session() as session:
        session.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    try:
        body = assert_problem(api.get("/readyz"), 503)
        assert "'0001'" in body["detail"]
        assert "hint" in body
        assert api.get("/healthz").status_code == 200  # the process is still up
    finally:
        with api.store.session() as session:
            session.execute(
                text("UPDATE alembic_version SET version_num = :v"), {"v": HEAD_REVISION}
            )
    assert api.get("/readyz").status_code == 200
    assert_no_secrets(api)


def test_openapi_and_docs_are_served_under_api_v1(serve: Any) -> None:
    api = serve()
    spec = api.get("/api/v1/openapi.json").json()
    assert {"/api/v1/runs", "/api/v1/runs/{run_id}", "/api/v1/services/{service}/trigger"} <= set(
        spec["paths"]
    )
    docs = api.get("/api/v1/docs")
    assert docs.status_code == 200
    assert "Content-Security-Policy" in docs.headers
    # every asset from this server: no CDN, so the docs work offline
    assert re.findall(r'(?:src|href)="(?!/api/v1/docs/)', docs.text) == []
    start = api.get("/api/v1/docs/start.js")
    assert start.headers["content-type"].startswith("text/javascript")
    assert "/api/v1/openapi.json" in start.text
    for asset in re.findall(r'(?:src|href)="([^"]+)"', docs.text):
        assert api.get(asset).status_code == 200, asset
    body = assert_problem(api.get("/api/v1/nothing-here"), 404)
    assert body["detail"] == "no endpoint /api/v1/nothing-here"


# --- who is asking -------------------------------------------------------------------------
def test_a_request_without_a_valid_token_is_refused_with_401(serve: Any) -> None:
    api = serve()
    good = api.token("admin")
    revoked = api.token("viewer", "gone")
    expired = api.token("viewer", "late")
    tokens = list_tokens(api.caller)
    ids = {t.actor: t.id for t in tokens}
    revoke_token(api.caller, ids["gone"], "left the team")
    with api.store.session() as session:
        session.execute(
            text("UPDATE api_tokens SET expires_at = :at WHERE id = :id"),
            {"at": time.time() - 1, "id": ids["late"]},
        )
    cases: list[dict[str, str]] = [
        {},
        {"Authorization": f"Basic {good}"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer bo_not-a-token"},
        {"Authorization": "Bearer bo_" + "x" * 40},
        {"Authorization": f"Bearer {revoked}"},
        {"Authorization": f"Bearer {expired}"},
    ]
    for headers in cases:
        for method, path in (
            ("GET", "/api/v1/runs"),
            ("GET", "/metrics"),
            ("POST", "/api/v1/services/shop/trigger"),
        ):
            response = api.request(method, path, headers=headers, json={"reason": "r"})
            assert_problem(response, 401)
            assert response.headers["www-authenticate"].startswith("Bearer")
    assert api.get("/api/v1/runs", good).status_code == 200
    assert_no_secrets(api)


# --- reads ---------------------------------------------------------------------------------
def test_a_run_reads_as_the_cli_prints_it(serve: Any, tmp_path: Path) -> None:
    api = serve()
    viewer = api.token("viewer")
    run_id = real_run(api, tmp_path)
    report = api.get(f"/api/v1/runs/{run_id}", viewer)
    assert report.status_code == 200
    assert report.json() == json.loads(
        json.dumps(commands.status(api.caller, run_id).to_json(), default=str)
    )
    assert api.get(f"/api/v1/runs/{run_id[:6]}", viewer).json()["run_id"] == run_id
    journal = api.get(f"/api/v1/runs/{run_id}/journal", viewer).json()
    expected = [journal_json(e) for e in commands.journal(api.caller, run_id)]
    assert journal == json.loads(json.dumps(expected, default=str))
    explained = api.get(f"/api/v1/runs/{run_id}/explain", viewer).json()
    _, lines = commands.explain_run(api.caller, run_id)
    assert explained["explanation"] == lines
    assert explained["run"]["run_id"] == run_id
    listed = api.get("/api/v1/runs", viewer).json()
    assert [r["run_id"] for r in listed["runs"]] == [run_id]
    assert listed["runs"][0] == commands.runs(api.caller)[0].to_json()
    for path in ("/api/v1/runs/nope", "/api/v1/runs/nope/journal", "/api/v1/runs/nope/explain"):
        body = assert_problem(api.get(path, viewer), 404)
        assert body["detail"] == "no run 'nope' in this store"
        assert body["hint"]
    assert_no_secrets(api)


def test_the_list_filters_and_refuses_bad_filters(serve: Any) -> None:
    api = serve()
    viewer = api.token("viewer")
    now = time.time()
    old = add_run(api.store, service="shop", at=now - 10 * 86400, status="failed")
    watch = add_run(api.store, service="shop", at=now - 3600, mode="watch", status="running")
    other = add_run(api.store, service="cart", at=now - 60)

    def ids(**query: str) -> list[str]:
        response = api.get("/api/v1/runs", viewer, params=query)
        assert response.status_code == 200, response.text
        return [r["run_id"] for r in response.json()["runs"]]

    assert ids() == [other, watch, old]
    assert ids(service="shop") == [watch, old]
    assert ids(status="failed") == [old]
    assert ids(mode="watch") == [watch]
    assert ids(since="7d") == [other, watch]
    assert ids(since="30m") == [other]
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 7200))
    assert ids(since=since) == [other, watch]
    assert ids(service="shop", status="running") == [watch]
    for query, status, named in (
        ({"status": "dancing"}, 400, "status"),
        ({"mode": "sideways"}, 400, "mode"),
        ({"since": "yesterday-ish"}, 400, "since"),
        ({"cursor": "not-a-cursor"}, 400, "cursor"),
        ({"limit": "0"}, 422, "limit"),
        ({"limit": "501"}, 422, "limit"),
        ({"limit": "many"}, 422, "limit"),
    ):
        body = assert_problem(api.get("/api/v1/runs", viewer, params=query), status)
        assert named in body["detail"]
        assert body["hint"]
    assert_no_secrets(api)


def test_pages_return_every_run_once_newest_first(serve: Any) -> None:
    api = serve()
    viewer = api.token("viewer")
    # ties on created_at across page edges: the id breaks them
    made = [add_run(api.store, at=1.8e9 + i // 4, service=f"s{i % 3}") for i in range(61)]
    expected = sorted(made, key=lambda run_id: (1.8e9 + made.index(run_id) // 4, run_id))[::-1]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 7} | ({"cursor": cursor} if cursor else {})
        page = api.get("/api/v1/runs", viewer, params=params).json()
        pages += 1
        seen += [r["run_id"] for r in page["runs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        if pages == 3:  # a run made between two pages is newer: it does not shift the rest
            add_run(api.store, at=1.9e9)
    assert seen == expected
    assert pages == 9
    first = api.get("/api/v1/runs", viewer).json()
    assert len(first["runs"]) == 50
    assert first["next_cursor"]
    filtered = api.get("/api/v1/runs", viewer, params={"service": "s1", "limit": 5}).json()
    rest = api.get(
        "/api/v1/runs", viewer, params={"service": "s1", "cursor": filtered["next_cursor"]}
    ).json()
    got = [r["run_id"] for r in filtered["runs"] + rest["runs"]]
    assert got == [r for r in expected if made.index(r) % 3 == 1]
    assert rest["next_cursor"] is None


# --- actions -------------------------------------------------------------------------------
ROLES = ("viewer", "operator", "approver", "admin")


def test_trigger_and_approve_need_their_role_and_a_refusal_is_audited(serve: Any) -> None:
    api = serve()
    tokens = {role: api.token(role) for role in ROLES}
    add_run(api.store, service="shop", mode="watch", status="running")
    waiting = [("checkpoint_started", {"stage": 0, "approve": True})]
    gated = add_run(api.store, service="cart", mode="deploy", status="running", events=waiting)
    cases = (
        ("/api/v1/services/shop/trigger", {"reason": "error rate"}, "operate", "trigger.manual"),
        (f"/api/v1/runs/{gated}/approve", {"comment": "looks fine"}, "approve", "run.approve"),
    )
    for path, body, permission, action in cases:
        for role, token in tokens.items():
            denied_before = len(api.audited("api.denied"))
            response = api.post(path, token, json=body)
            if role in ("admin", {"operate": "operator", "approve": "approver"}[permission]):
                assert response.status_code == 202, response.text
                record = api.audited(action)[-1]
                assert record.actor == f"{role}-bot"  # the token's actor, not the server's
                continue
            problem = assert_problem(response, 403)
            needed = "operator or admin" if permission == "operate" else "approver or admin"
            assert f"needs the role {needed}" in problem["detail"]
            denials = api.audited("api.denied")
            assert len(denials) == denied_before + 1
            assert denials[-1].actor == f"{role}-bot"
            assert denials[-1].details["method"] == "POST"
            assert denials[-1].details["path"] == path
            assert denials[-1].details["permission"] == permission
    assert api.audited("trigger.manual")[-1].details["reason"] == "error rate"
    assert api.audited("run.approve")[-1].details == {"stage": 1, "comment": "looks fine"}
    assert_no_secrets(api)


def test_actions_answer_the_verbs_errors_as_problems(serve: Any) -> None:
    api = serve()
    admin = api.token("admin")
    finished = add_run(api.store, service="idle")
    conflict = assert_problem(
        api.post("/api/v1/services/idle/trigger", admin, json={"reason": "x"}), 409
    )
    assert "no deploy or watch is running" in conflict["detail"]
    assert_problem(api.post(f"/api/v1/runs/{finished}/approve", admin, json={}), 409)
    assert_problem(api.post("/api/v1/runs/nope/approve", admin, json={}), 404)
    invalid = assert_problem(api.post("/api/v1/services/idle/trigger", admin, json={}), 422)
    assert invalid["errors"] == [{"field": "reason", "message": "Field required"}]
    assert_problem(api.post("/api/v1/services/idle/trigger", admin, content=b"{not json"), 422)
    assert_problem(api.get("/api/v1/services/idle/trigger", admin), 405)
    assert_no_secrets(api)


# --- metrics and open mode -----------------------------------------------------------------
def test_metrics_expose_the_store_figures_to_a_viewer(serve: Any, tmp_path: Path) -> None:
    api = serve()
    viewer = api.token("viewer")
    real_run(api, tmp_path)
    assert_problem(api.get("/metrics"), 401)
    response = api.get("/metrics", viewer)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert (
        'backout_runs_total{environment="",mode="backout",outcome="backed_out",service="shop"} 1.0'
        in (response.text)
    )


def test_open_access_reads_without_a_token_as_anonymous_viewer(serve: Any, tmp_path: Path) -> None:
    api = serve(open_access=True)
    operator = api.token("operator")
    run_id = real_run(api, tmp_path)
    add_run(api.store, service="shop", mode="watch", status="running", at=time.time() - 3600)
    assert api.get("/api/v1/runs").json()["runs"][0]["run_id"] == run_id
    assert api.get(f"/api/v1/runs/{run_id}").status_code == 200
    assert api.get("/metrics").status_code == 200
    problem = assert_problem(api.post("/api/v1/services/shop/trigger", json={"reason": "r"}), 403)
    assert problem["detail"].startswith("anonymous (role viewer) may not operate")
    assert api.audited("api.denied")[-1].actor == "anonymous"
    # a token, when given, is still checked and used
    assert_problem(api.get("/api/v1/runs", "bo_" + "x" * 40), 401)
    accepted = api.post("/api/v1/services/shop/trigger", operator, json={"reason": "r"})
    assert accepted.status_code == 202
    assert api.audited("trigger.manual")[-1].actor == "operator-bot"
    assert_no_secrets(api)
