"""The general outbox on SQLite and PostgreSQL: any event enters it without a change
record, keyed so that queuing it again is the same row; a route is delivered by a channel
from the registry (here one defined by the test, as a plugin would be) to a real local
HTTP receiver; and a store written before the outbox was general keeps its queue."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from backout import commands
from backout.channels import (
    CHANNELS,
    Channel,
    ChannelOptions,
    Delivery,
    HttpSender,
    Receipt,
    Route,
    enqueue,
)
from backout.errors import UsageError
from backout.settings import Settings
from backout.store.db import HEAD_REVISION, Store, _alembic_config, open_store
from backout.store.models import OutboxRow
from tests.callers import caller
from tests.http_server import QuietHandler, http_server


class Hook(HttpSender):
    """A test channel, built the way a plugin builds one: POST each event as JSON."""

    def deliver(self, delivery: Delivery) -> Receipt:
        body = {"stream": delivery.stream, "event": delivery.event, **delivery.payload}
        receipt, answer = self.send_json(delivery, "POST", "/hook", body)
        ref = answer.get("thread")
        return Receipt(receipt.ok, receipt.error, str(ref) if ref else None, receipt.retry_after)


class TestHook(Channel):
    """Named for what it is: a channel that exists only in this test module."""

    kind = "test-hook"
    Options = ChannelOptions

    def needs_ref(self, delivery: Delivery) -> bool:
        return delivery.event != "opened"  # replies go to the thread the first event opened

    def open(self, options: ChannelOptions) -> Hook:
        return Hook(options)


if "test-hook" not in CHANNELS:
    CHANNELS.register(TestHook())


class Receiver:
    """A local HTTP receiver: 429 with Retry-After for the first request, then accepts,
    remembering each Idempotency-Key; a key seen again is answered 200 but not counted."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.throttled = 0
        self.bodies: list[dict[str, Any]] = []
        self.keys: list[str] = []
        self.duplicates = 0

    def handle(self, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self.lock:
            if self.throttled == 0:
                self.throttled += 1
                return 429, {"error": "slow down"}, {"Retry-After": "0.2"}
            if key in self.keys:
                self.duplicates += 1
                return 200, {}, {}
            self.keys.append(key)
            self.bodies.append(body)
            return 200, {"thread": f"T-{body['stream']}"}, {}


@contextmanager
def serving(receiver: Receiver) -> Iterator[str]:
    class Handler(QuietHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            code, answer, headers = receiver.handle(self.headers.get("Idempotency-Key", ""), body)
            self.reply(code, json.dumps(answer).encode(), headers)

    with http_server(Handler) as url:
        yield url


def _queue(store: Store, run_id: str) -> None:
    with store.session() as session:
        for seq, event in enumerate(["opened", "step_failed", "closed"], start=1):
            enqueue(
                session,
                "ops",
                f"run:{run_id}",
                event,
                {"run_id": run_id, "seq": seq},
                key=f"ops-{run_id}-{seq}",
                run_id=run_id,
            )


def test_run_events_without_a_change_are_delivered_once_in_order(store_url: str) -> None:
    me = caller(Settings(database_url=store_url, actor="sender"))
    _queue(me.store, "r1")
    _queue(me.store, "r2")
    _queue(me.store, "r1")  # the same events again (a resumed run): the same rows
    rows = commands.outbox_list(me, route="ops")
    assert len(rows) == 6
    assert all(r.change_id is None and r.run_id in ("r1", "r2") for r in rows)

    receiver = Receiver()
    with serving(receiver) as url:
        route = Route.of("ops", "test-hook", {"url": url}, retry_delay=0.05)
        report = commands.outbox_send(me, route, timeout=20)
        again = commands.outbox_send(me, route, timeout=0, once=True)
    assert (report.sent, report.pending, report.failed_attempts) == (6, 0, 1)
    assert again.sent == 0  # nothing is sent twice
    assert receiver.duplicates == 0
    assert len(receiver.keys) == len(set(receiver.keys)) == 6
    for run_id in ("r1", "r2"):
        seen = [b["event"] for b in receiver.bodies if b["run_id"] == run_id]
        assert seen == ["opened", "step_failed", "closed"]
    listed = {(r.stream, r.event): r for r in commands.outbox_list(me, route="ops")}
    assert listed[("run:r1", "opened")].ref == "T-run:r1"
    assert all(r.status == "sent" for r in listed.values())
    audit = commands.audit_log(me, action="outbox.delivered")
    assert len(audit) == 6
    assert {a.subject for a in audit} == {"run:r1", "run:r2"}
    assert {a.details["channel"] for a in audit} == {"test-hook"}


def test_a_reply_waits_for_the_thread_its_stream_opened(store_url: str) -> None:
    """A later event that needs its stream's remote record is not sent before it exists."""
    me = caller(Settings(database_url=store_url, actor="sender"))
    with me.store.session() as session:
        enqueue(session, "ops", "run:x", "step_failed", {"run_id": "x"}, run_id="x")
    receiver = Receiver()
    receiver.throttled = 1  # no 429 in this test
    with serving(receiver) as url:
        route = Route.of("ops", "test-hook", {"url": url}, retry_delay=0.05)
        report = commands.outbox_send(me, route, timeout=0, once=True)
    assert (report.sent, report.pending) == (0, 1)
    assert receiver.bodies == []


def test_a_route_names_an_installed_channel_with_valid_options() -> None:
    with pytest.raises(UsageError) as unknown:
        Route.of("ops", "carrier-pigeon", {"url": "https://example.com"})
    assert "no channel named 'carrier-pigeon'" in unknown.value.message
    assert "servicenow" in (unknown.value.hint or "")
    assert "jira" in (unknown.value.hint or "")
    with pytest.raises(UsageError) as bad:
        Route.of("itsm", "servicenow", {"url": "acme.service-now.com"})
    assert "channel 'servicenow': url" in bad.value.message
    assert "not an http(s) URL" in bad.value.message


def test_a_store_from_before_keeps_its_queue_and_remote_records(store_url: str) -> None:
    """Upgrading from revision 0005: queued change events become route ``itsm``, keyed as
    their deliveries already were; a sent create's remote record stays the stream's ref."""
    store = Store(store_url)
    try:
        if store.is_sqlite:
            from backout.store import dialect

            dialect.prepare_sqlite(dialect.sqlite_file(store.url), True)  # type: ignore[arg-type]
        config = _alembic_config()
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0005")
            now = time.time()
            conn.execute(
                sa.text(
                    "INSERT INTO changes (id, title, plan, plan_file, plan_version, service, "
                    "risk, risk_computed, external_id, requester, status, created_at, "
                    "updated_at) VALUES (7, 't', 'web', 'p.yaml', 'v', 'web', 'low', 'low', "
                    "'SYS-7', 'alice', 'approved', :now, :now)"
                ),
                {"now": now},
            )
            for row_id, event, status in ((1, "created", "sent"), (2, "approved", "pending")):
                conn.execute(
                    sa.text(
                        "INSERT INTO outbox (id, change_id, event, payload, status, attempts, "
                        "next_attempt_at, last_error, created_at) VALUES (:id, 7, :event, "
                        "'{}', :status, 0, 0, '', :now)"
                    ),
                    {"id": row_id, "event": event, "status": status, "now": now},
                )
    finally:
        store.dispose()

    upgraded = open_store(store_url)
    try:
        assert upgraded.revision() == HEAD_REVISION
        with upgraded.session() as session:
            rows = session.scalars(sa.select(OutboxRow).order_by(OutboxRow.id)).all()
            seen = [(r.route, r.stream, r.key, r.ref, r.status) for r in rows]
        assert seen == [
            ("itsm", "change:7", "backout-outbox-1", "SYS-7", "sent"),
            ("itsm", "change:7", "backout-outbox-2", None, "pending"),
        ]
        with upgraded.session() as session:  # the key stays unique
            again = enqueue(session, "itsm", "change:7", "approved", {}, key="backout-outbox-2")
            assert again.id == 2
    finally:
        upgraded.dispose()
