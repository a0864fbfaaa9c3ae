"""What the dashboard's pages cost and change, over real HTTP on SQLite and PostgreSQL:

- ``GET /status`` only reads: a viewer's page load resolves nothing and audits nothing; the
  server's own quiet-period sweep resolves quiet incidents, as ``backout``, audited;
- ``GET /audit`` verifies only what is new since its last verification (and the newest few
  records again): an old record edited through the database is not seen by the next load
  but by the next full verification (at start, then every few minutes, and
  ``backout audit verify``); a new one edited is seen at once.

The server here is the API's uvicorn setup in a thread of the test (as the ``serve`` fixture
of test_server.py starts it) with the sweeps' intervals of the test.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text, update

from backout import commands
from backout.commands.caller import Caller
from backout.flags import listen as flag_listen
from backout.flags.guard import Limits
from backout.server.app import create_app
from backout.server.auth import COOKIE
from backout.server.events import Streams
from backout.server.listen import listen
from backout.server.upkeep import ChainWatch, Timing, Upkeep
from backout.settings import Settings
from backout.store import audit
from backout.store.db import Store
from backout.store.models import AuditRow, IncidentRow, IncidentUpdateRow
from tests.integration.test_server import START_TIMEOUT_S, Api, add_run, with_password
from tests.services import wait_until

SWEEP_TIMEOUT_S = 60.0  # generous: the sweep runs every fraction of a second here
NEVER = 24 * 3600.0  # a sweep interval no test outlives
HOURS_AGO = 2 * 3600.0  # further back than the default quiet period (30m)


@dataclass
class Served:
    api: Api
    upkeep: Upkeep


@pytest.fixture
def serve_timed(store_url: str) -> Iterator[Callable[[Timing], Served]]:
    """``serve_timed(timing)``: the API on a free loopback port with the sweeps' ``timing``;
    stopped after."""
    started: list[tuple[Any, threading.Thread, Any, Store, httpx.Client, Streams]] = []

    def start(timing: Timing) -> Served:
        url = with_password(store_url)
        store = Store(url)
        store.open()
        settings = Settings(database_url=url, actor="server")
        listener = listen("127.0.0.1:0", open_access=False)
        streams = Streams()
        app = create_app(store, settings, streams=streams, upkeep=timing)
        server = flag_listen.make_server(app, Limits())
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [listener.sock]}, daemon=True
        )
        thread.start()
        client = httpx.Client(timeout=30)
        started.append((server, thread, listener, store, client, streams))
        wait_until(lambda: server.started, START_TIMEOUT_S, "the API server to start")
        upkeep: Upkeep = app.state.upkeep
        # its start's work (the warm-up, the chain's first walk), which the first request
        # starts here (no lifespan), done before the test acts
        client.get(listener.url + "/healthz").raise_for_status()
        wait_until(upkeep.settled.is_set, START_TIMEOUT_S, "the server's start-up work")
        return Served(Api(listener.url, store, Caller(store, "admin"), client), upkeep)

    yield start
    for server, thread, listener, store, client, streams in started:
        client.close()
        streams.stop()
        server.should_exit = True
        thread.join(START_TIMEOUT_S)
        assert not thread.is_alive(), "the server (and its sweeps) did not stop"
        listener.sock.close()
        store.dispose()


def get(api: Api, path: str, token: str) -> httpx.Response:
    response = api.client.get(
        api.url + path, headers={"Cookie": f"{COOKIE}={token}"}, follow_redirects=False
    )
    api.client.cookies.clear()
    assert response.status_code == 200, response.text
    return response


def counts(api: Api) -> tuple[int, int]:
    """(audit records, incident updates)."""
    with api.store.session(read_only=True) as session:
        records = session.scalar(select(func.count()).select_from(AuditRow))
        updates = session.scalar(select(func.count()).select_from(IncidentUpdateRow))
    return int(records or 0), int(updates or 0)


def quiet_monitoring_incident(api: Api) -> int:
    """An incident of ``shop`` in ``monitoring`` since long before its quiet period ended."""
    add_run(api.store, service="shop")
    commands.incident_update(api.caller, "shop", "investigating", "Checkout is slow.")
    report = commands.incident_update(api.caller, "shop", "monitoring", "A fix is out.")
    with api.store.session() as session:
        session.execute(
            update(IncidentRow)
            .where(IncidentRow.id == report.id)
            .values(updated_at=IncidentRow.updated_at - HOURS_AGO)
        )
        session.execute(
            update(IncidentUpdateRow)
            .where(IncidentUpdateRow.incident_id == report.id)
            .values(at=IncidentUpdateRow.at - HOURS_AGO)
        )
    return report.id


def incident_status(api: Api, incident_id: int) -> str:
    with api.store.session(read_only=True) as session:
        return str(session.scalar(select(IncidentRow.status).where(IncidentRow.id == incident_id)))


# --- the status page ----------------------------------------------------------------------------
def test_the_status_page_only_reads(serve_timed: Callable[[Timing], Served]) -> None:
    api = serve_timed(Timing(quiet_every=NEVER)).api
    viewer = api.token("viewer", "viola")
    incident = quiet_monitoring_incident(api)
    before = counts(api)

    for _ in range(2):
        shown = get(api, "/status", viewer).text
        assert "Monitoring" in shown  # as the store has it: the next sweep resolves it

    assert counts(api) == before
    assert incident_status(api, incident) == "monitoring"
    assert commands.audit_log(api.caller, actor="viola") == []


def test_the_server_resolves_quiet_incidents_itself(
    serve_timed: Callable[[Timing], Served],
) -> None:
    api = serve_timed(Timing(quiet_every=0.1)).api
    viewer = api.token("viewer", "viola")
    incident = quiet_monitoring_incident(api)
    get(api, "/status", viewer)  # a server's sweeps run from its first request at the latest

    wait_until(
        lambda: incident_status(api, incident) == "resolved",
        SWEEP_TIMEOUT_S,
        "the server's sweep to resolve the quiet incident",
    )
    [resolution] = [
        r for r in commands.audit_log(api.caller, "incident.updated") if r.details.get("reason")
    ]
    assert resolution.actor == "backout"
    assert (resolution.details["status"], resolution.details["reason"]) == (
        "resolved",
        "quiet period",
    )
    [report] = commands.incidents(api.caller, "shop")
    assert report.updates[-1].actor == "backout"
    # dated when the quiet period (the default, 30m) ended
    assert report.resolved_at == pytest.approx(report.updates[-2].at + 30 * 60)
    assert "All Systems Operational" in get(api, "/status", viewer).text
    assert commands.audit_log(api.caller, actor="viola") == []


# --- the audit page -----------------------------------------------------------------------------
def chain_line(api: Api, token: str) -> str:
    found = re.search(r'<p id="chain">(.*?)</p>', get(api, "/audit", token).text, re.S)
    assert found is not None
    return found.group(1)


def append(api: Api, how_many: int) -> int:
    with api.store.session() as session:
        for n in range(how_many):
            last = audit.append(session, "tester", "test.step", f"thing:{n}", {"n": n})
    return last.seq


def walked(chain: ChainWatch) -> int:
    """The records the last page load read."""
    assert chain.last is not None
    return chain.last.walked


def tamper(api: Api, seq: int) -> None:
    with api.store.session() as session:
        session.execute(text("UPDATE audit SET actor = 'mallory' WHERE seq = :seq"), {"seq": seq})


def test_an_audit_page_load_verifies_only_the_new_records(
    serve_timed: Callable[[Timing], Served],
) -> None:
    served = serve_timed(Timing(verify_every=NEVER, recheck=0))
    api, chain = served.api, served.upkeep.chain
    viewer = api.token("viewer")
    head = append(api, 5)
    first = chain_line(api, viewer)
    assert "The chain holds" in first
    assert f"{head} records" in first
    assert f"Verified through #{head}" in first

    head = append(api, 3)
    again = chain_line(api, viewer)
    assert f"Verified through #{head}" in again
    assert walked(chain) == 3  # the new records, no more

    # an old record edited through the database: not re-read by a page load ...
    tamper(api, 2)
    assert "The chain holds" in chain_line(api, viewer)
    assert walked(chain) == 0
    assert commands.audit_verify(api.caller).bad_seq == 2  # `backout audit verify` sees it

    # ... but a new record edited is seen at once
    newest = append(api, 1)
    tamper(api, newest)
    broken = chain_line(api, viewer)
    assert "The chain is broken" in broken
    assert f"at record {newest}" in broken

    # and the full verification (the server's, at start and every few minutes) finds the first
    chain.full()
    assert "at record 2" in chain_line(api, viewer)


def test_a_rewritten_tail_is_seen_at_the_next_load(
    serve_timed: Callable[[Timing], Served],
) -> None:
    """Records rewritten with their hashes recomputed (what a page load cannot recompute
    cheaply): the head it verified no longer holds its hash."""
    api = serve_timed(Timing(verify_every=NEVER, recheck=0)).api
    viewer = api.token("viewer")
    head = append(api, 4)
    assert "The chain holds" in chain_line(api, viewer)
    with api.store.session() as session:
        session.execute(
            text("UPDATE audit SET hash = :h WHERE seq = :seq"), {"h": "f" * 64, "seq": head}
        )
    broken = chain_line(api, viewer)
    assert "The chain is broken" in broken
    assert f"record {head}" in broken


def test_the_servers_full_verification_finds_an_edited_old_record(
    serve_timed: Callable[[Timing], Served],
) -> None:
    api = serve_timed(Timing(verify_every=0.1, recheck=0)).api
    viewer = api.token("viewer")
    append(api, 5)
    assert "The chain holds" in chain_line(api, viewer)
    tamper(api, 2)
    wait_until(
        lambda: "at record 2" in chain_line(api, viewer),
        SWEEP_TIMEOUT_S,
        "the server's full verification to find the edited record",
    )
    assert "The chain is broken" in chain_line(api, viewer)


def test_verifying_from_a_record_on(store_url: str) -> None:
    """``audit.verify(since=N)``: the walk starts after record N, linked to its stored hash;
    ``records`` counts the whole chain; the checkpoint may be record N's own hash."""
    store = Store(store_url)
    try:
        with store.session() as session:
            rows = [audit.append(session, "tester", "test.step", f"thing:{n}") for n in range(6)]
        with store.session(read_only=True) as session:
            whole = audit.verify(session)
            assert audit.verify(session, since=4) == whole
            assert audit.verify(session, since=6) == whole
            assert audit.verify(session, rows[3].hash, since=4).ok
            assert audit.verify(session, rows[5].hash, since=6).ok
            assert not audit.verify(session, rows[1].hash, since=4).ok  # before the walk
        with store.session() as session:
            session.execute(text("UPDATE audit SET actor = 'mallory' WHERE seq = 2"))
        with store.session(read_only=True) as session:
            assert audit.verify(session, since=3).ok  # record 2 is not read
            assert audit.verify(session, since=1).bad_seq == 2
            assert audit.verify(session).bad_seq == 2
        with store.session() as session:
            session.execute(text("DELETE FROM audit WHERE seq = 4"))
        with store.session(read_only=True) as session:
            gone = audit.verify(session, since=4)
            assert (gone.ok, gone.bad_seq) == (False, 4)
            assert audit.verify(session, since=3).bad_seq == 4
            assert audit.verify(session, since=9).bad_seq == 9  # past the head: not there
    finally:
        store.dispose()
