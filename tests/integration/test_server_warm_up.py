"""The server's warm-up (server/upkeep.py): at start it runs the reads of a request's token
check and of an alert's delivery once, and sends itself one alert request in process with
a token no one has, so the first alert after a start does not pay for compiling them or
for what FastAPI builds at its first request. It must write nothing (no inbox entry, no
audit record, no token touched) and log nothing (no access line, no refusal)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from sqlalchemy import func, select

from backout import commands
from backout.commands.alerts import deliver_alerts
from backout.commands.caller import Caller
from backout.flags import listen as flag_listen
from backout.flags.guard import Limits
from backout.server.access import WARM_UP_KEY
from backout.server.app import create_app
from backout.server.events import Streams
from backout.server.listen import ApiServer, listen
from backout.server.upkeep import WARM_UP_TOKEN, Upkeep, warm_request
from backout.server.workers import Workers
from backout.settings import Settings
from backout.store.db import Store
from backout.store.inbox import InboxRow
from backout.store.models import AuditRow
from backout.store.tokens import TokenRow
from backout.triggers.alerts import WebhookPayload
from tests.callers import caller
from tests.services import wait_until

PAYLOAD = {
    "version": "4",
    "groupKey": "{}:{}",
    "status": "firing",
    "receiver": "backout",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "HighErrors", "service": "shop"},
            "startsAt": "2026-12-01T00:00:00Z",
            "fingerprint": "f1",
        }
    ],
}


def counts(store_url: str) -> tuple[int, ...]:
    me = caller(Settings(database_url=store_url))
    with me.store.session(read_only=True) as session:
        rows = (session.scalar(select(func.count()).select_from(t)) for t in (AuditRow, InboxRow))
        touched = session.scalar(
            select(func.count()).select_from(TokenRow).where(TokenRow.last_used_at.is_not(None))
        )
        return (*[int(n or 0) for n in rows], int(touched or 0))


def test_the_warm_up_compiles_the_alert_path_and_writes_nothing(store_url: str) -> None:
    me = caller(Settings(database_url=store_url, actor="ops"))
    commands.create_token(me, "operator", "alertmanager", None)
    deliver_alerts(me, WebhookPayload.model_validate(PAYLOAD))  # something stored already
    before = counts(store_url)
    with Store(store_url) as store:  # a new engine: as a server just started
        cache = store.engine._compiled_cache  # SQLAlchemy's per-engine statement cache
        assert cache is not None
        compiled = len(cache)

        Upkeep(Caller(store, "backout")).warm_up()

        assert len(cache) >= compiled + 3  # the token's look-up, the watching run, the claim
    assert counts(store_url) == before  # nothing written


def test_the_warm_up_request_is_refused_and_leaves_no_trace(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    me = caller(Settings(database_url=store_url, actor="ops"))
    commands.create_token(me, "operator", "alertmanager", None)
    before = counts(store_url)
    with Store(store_url) as store, caplog.at_level(logging.INFO):
        app = create_app(store, Settings(database_url=store_url, actor="server"))
        status = asyncio.run(warm_request(app))
    assert status == 401  # the token is no one's: the request went through the auth gate
    assert counts(store_url) == before
    assert not [r for r in caplog.records if r.name.startswith("backout.server")], caplog.text


def test_the_upkeep_sends_the_warm_up_request_to_the_app_it_is_given(store_url: str) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append({**scope, "body": (await receive())["body"]})
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with Store(store_url) as store:
        upkeep = Upkeep(Caller(store, "backout"))

        async def start() -> None:
            upkeep.ensure_started(app)
            while upkeep.warmed is None:
                await asyncio.sleep(0.01)
            upkeep.stop()

        asyncio.run(asyncio.wait_for(start(), 30))
    assert upkeep.warmed == 401
    [request] = seen
    assert (request["method"], request["path"]) == ("POST", "/api/v1/alerts/alertmanager")
    assert (b"authorization", f"Bearer {WARM_UP_TOKEN}".encode()) in request["headers"]
    assert request["state"] == {WARM_UP_KEY: True}
    assert WebhookPayload.model_validate_json(request["body"]).alerts


def test_backout_server_warms_the_app_it_serves_before_the_first_request(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(database_url=store_url, actor="server")
    with Store(store_url) as store, caplog.at_level(logging.INFO):
        listener = listen("127.0.0.1:0", open_access=False)
        app = create_app(store, settings, streams=Streams())
        upkeep: Upkeep = app.state.upkeep
        config = flag_listen.make_server(app, Limits()).config
        server = ApiServer(config, Streams(), Workers(Caller(store, "server"), 0), upkeep)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listener.sock]})
        thread.start()
        try:
            wait_until(lambda: upkeep.warmed is not None, 30, "the warm-up request")
        finally:
            server.should_exit = True
            thread.join(30)
            listener.sock.close()
    assert upkeep.warmed == 401
    assert not [r for r in caplog.records if r.name == "backout.server.access"], caplog.text
