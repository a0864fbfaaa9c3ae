"""Live events as Server-Sent Events: one run's journal (``/runs/{id}/events``) or every
run's (``/events``), each event as ``backout journal --json`` prints it, as it is written.

Each message is ``id:`` (where a client resumes), ``event:`` (the event's kind) and
``data:`` (the event as JSON). The id is the event's ``seq`` on a run's stream, the journal
row's id on the global one (which adds ``run_id`` to each event). A client that reconnects
with ``Last-Event-ID`` (or ``?after=`` when it cannot set headers) gets what follows that
event, nothing twice. Without a position, a run's stream starts at its first event and the
global stream at the next event written.

No tight polling: a stream waits on the ``backout_journal`` doorbell (rung by every journal
append, at once in this process, by PostgreSQL's NOTIFY from others, on SQLite by the
process's watch of the file's commits) and looks at the table at least every ``POLL_S``
anyway, in case a notice was lost. A
``: keep-alive`` comment goes out after ``HEARTBEAT_S`` of quiet, so proxies keep the
connection. A run's stream ends once the run is over
(succeeded or failed) and its last event is sent; every stream ends when the server stops.

On PostgreSQL, journal row ids are handed out when a row is inserted, not when it commits:
id 11 may be visible before id 10. The global stream so never steps over a missing id that
may still come: it holds at the gap until the row arrives, or until the row after the gap
is ``GAP_WAIT_S`` old (the missing one was rolled back).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio.to_thread
from sqlalchemy import func, select

from backout.errors import UsageError
from backout.kernel.states import RUN_TERMINAL
from backout.render import journal_json
from backout.store import notices, repo
from backout.store.db import Store
from backout.store.models import EventRow, RunRow

MEDIA_TYPE = "text/event-stream"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # nginx: do not buffer
HEARTBEAT_S = 15.0  # a keep-alive comment after this long without a message
POLL_S = 1.0  # the table is read at least this often, rung or not
GAP_WAIT_S = 5.0  # how long the global stream holds at a missing journal id (PostgreSQL)
BATCH = 500  # global stream: rows read at a time
RETRY_MS = 2000  # sent first: how long an EventSource waits before it reconnects
KEEP_ALIVE = ": keep-alive\n\n"
_TERMINAL = frozenset(status.value for status in RUN_TERMINAL)
_POSITION_HINT = "give the id of the last event received (an integer, 0 for the start)"


def position(last_event_id: str | None, after: str | None) -> int | None:
    """Where a client resumes: ``Last-Event-ID`` (an EventSource reconnecting sends it, and
    it wins over the URL's ``?after=``), else ``?after=``; None when neither is given."""
    for where, value in (("Last-Event-ID", last_event_id), ("after", after)):
        if value is None or not value.strip():
            continue
        text = value.strip()
        if not text.isdecimal() or not text.isascii():
            raise UsageError(f"{where} {value!r} is not an event id", hint=_POSITION_HINT)
        return int(text)
    return None


def message(event_id: int, kind: str, data: dict[str, Any]) -> str:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)  # one line
    return f"id: {event_id}\nevent: {kind}\ndata: {body}\n\n"


class Feed(Protocol):
    """What a stream reads: the messages after its position (which it moves on), and
    whether the stream is over."""

    store: Store
    key: str  # the doorbell key: a run id, or notices.ANY

    def read(self) -> tuple[list[str], bool]: ...


@dataclass
class RunFeed:
    """One run's events after ``after`` (a seq); over once the run is over."""

    store: Store
    key: str
    after: int

    def read(self) -> tuple[list[str], bool]:
        with self.store.session(read_only=True) as session:
            # the status first: once it reads terminal, the event that made it so (written
            # in the same transaction) is among the events read next
            status = session.scalar(select(RunRow.status).where(RunRow.id == self.key))
            events = repo.load_events(session, self.key, self.after)
        if events:
            self.after = events[-1].seq
        sent = [message(e.seq, str(e.kind), journal_json(e)) for e in events]
        return sent, status is None or status in _TERMINAL


@dataclass
class AllFeed:
    """Every run's events after journal row ``after`` (None: from the next one written)."""

    store: Store
    after: int | None
    key: str = notices.ANY

    def read(self) -> tuple[list[str], bool]:
        with self.store.session(read_only=True) as session:
            if self.after is None:
                self.after = session.scalar(select(func.max(EventRow.id))) or 0
                return [], False
            query = select(EventRow).where(EventRow.id > self.after).order_by(EventRow.id)
            rows = list(session.scalars(query.limit(BATCH)))
            postgres = session.get_bind().dialect.name == "postgresql"
        sent: list[str] = []
        for row in rows:
            if postgres and row.id != self.after + 1 and time.time() - row.at < GAP_WAIT_S:
                break  # an id before it may still commit: hold here (see the module's doc)
            self.after = row.id
            event = repo.event_of(row)
            data = {"run_id": row.run_id, **journal_json(event)}
            sent.append(message(row.id, row.kind, data))
        return sent, False


class Streams:
    """The open streams of one app. :meth:`stop` (the server is stopping) ends them all."""

    def __init__(self) -> None:
        self.stopping = False
        self._wakers: set[_Waker] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def stop(self) -> None:
        """Safe from a signal handler: the wake-ups run later, in the event loop."""
        self.stopping = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake_all)

    def _wake_all(self) -> None:
        for waker in list(self._wakers):
            waker.event.set()

    async def follow(self, feed: Feed) -> AsyncIterator[str]:
        """The stream of ``feed``'s messages, as they are written, until it is over."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        waker = _Waker(loop)
        self._wakers.add(waker)
        bells: list[notices.Doorbell] = []
        try:
            # subscribed before the first read: nothing written after that read is missed
            await anyio.to_thread.run_sync(lambda: bells.append(_bell(feed, waker)))
            batch, over = await anyio.to_thread.run_sync(feed.read)
            yield f"retry: {RETRY_MS}\n\n"  # the start is fixed: the stream is open
            quiet_since = time.monotonic()
            while True:
                for text in batch:
                    yield text
                if batch:
                    quiet_since = time.monotonic()
                if over or self.stopping:
                    return
                if time.monotonic() - quiet_since >= HEARTBEAT_S:
                    yield KEEP_ALIVE
                    quiet_since = time.monotonic()
                await waker.wait(min(POLL_S, HEARTBEAT_S - (time.monotonic() - quiet_since)))
                batch, over = await anyio.to_thread.run_sync(feed.read)
        finally:
            self._wakers.discard(waker)
            for bell in bells:
                bell.close()


def _bell(feed: Feed, waker: Callable[[], None]) -> notices.Doorbell:
    return notices.doorbell(feed.store.engine, notices.JOURNAL, feed.key, waker)


class _Waker:
    """Wakes one stream's task from a doorbell's ring, whatever thread rings it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.event = asyncio.Event()

    def __call__(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self.loop.call_soon_threadsafe(self.event.set)

    async def wait(self, timeout: float) -> None:
        """Until a ring or ``timeout`` seconds; a ring after this returns is kept."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), max(0.0, timeout))
        self.event.clear()
