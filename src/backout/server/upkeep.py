"""What ``backout server`` does on its own, besides answering requests:

- **the quiet-period sweep**: every :data:`QUIET_SWEEP_S` seconds it resolves the status
  page's incidents whose quiet period has passed (:func:`backout.commands.incidents.
  resolve_quiet_incidents`), as ``backout``, the actor of every automatic move, each move
  audited and dated when the quiet period ended. The dashboard's ``GET /status`` only
  reads: a viewer's page load writes nothing.
- **the audit chain's verification** for the dashboard (:class:`ChainWatch`): the whole
  chain is walked at start and every :data:`FULL_VERIFY_S` seconds; an audit page load
  verifies only the records appended since the last verification, plus the newest
  :data:`RECHECK_RECORDS` again, so it costs little however long the chain is. It says
  what it proved: "verified through #N at T".
- **a warm-up** at start: the reads of a request's token check and of an alert's
  delivery, once, for names nothing has (:meth:`Upkeep.warm_up`), so that the first alert
  after a start does not pay for compiling them; and one alert request sent to the app
  itself, in process (no socket, no access-log line), with a token no one has: it is
  refused (401, nothing written, nothing audited), and on its way it makes everything a
  first request would otherwise make (the routes' handlers and their validators, which
  FastAPI builds at the first request, a worker thread, the lazily imported parts of the
  event loop's libraries): about 45 ms that the first alert after a start paid.

They run in the server's event loop (their store work in a worker thread), from the
server's start (``backout server`` starts them as uvicorn starts; an app served another
way starts them at its lifespan's start, or at its first request when it runs no
lifespan) until that loop ends with the server: nothing to stop by hand, and nothing left
running after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from starlette.types import ASGIApp, Message

from backout import heap
from backout.commands import alerts
from backout.commands.alerts import WARM_UP_SERVICE
from backout.commands.caller import Caller
from backout.commands.incidents import resolve_quiet_incidents
from backout.commands.tokens import PREFIX, authenticate
from backout.errors import Unauthenticated
from backout.server.access import WARM_UP_KEY
from backout.server.api_alerts import API
from backout.server.web_views import utc
from backout.store import audit

LOG = logging.getLogger("backout.server.upkeep")
QUIET_SWEEP_S = 30.0  # how often quiet incidents are resolved: the page's delay at most
FULL_VERIFY_S = 600.0  # how often the whole audit chain is walked again
RECHECK_RECORDS = 1000  # the newest records a page load verifies again (a few ms)
WARM_UP_TOKEN = PREFIX + "0" * 40  # well-formed; no token is it (secrets are random)


@dataclass(frozen=True)
class Timing:
    """The intervals (seconds) of the sweeps, and the records a page load re-verifies."""

    quiet_every: float = QUIET_SWEEP_S
    verify_every: float = FULL_VERIFY_S
    recheck: int = RECHECK_RECORDS


@dataclass(frozen=True)
class ChainState:
    """The last verification: ``verification`` (intact through its ``records``-th record,
    whose hash is its ``head_hash``; or the first broken link), made ``at``; ``full_at``:
    when the whole chain was last walked (None: not yet); ``walked``: the records that
    verification read."""

    verification: audit.Verification
    at: float
    full_at: float | None
    walked: int


class ChainWatch:
    """The audit chain's verification, kept between page loads. :meth:`check` (a page
    load) extends the last verification to the records appended since — each record
    links to the one before, so a verified prefix stays verified as long as the head it
    ended on keeps its hash — and re-reads the newest ``recheck`` records too; an edit of an
    older record is found by :meth:`full` (at start and every ``verify_every`` seconds).
    A broken chain stays reported broken until a full walk finds it intact again."""

    def __init__(self, caller: Caller, recheck: int = RECHECK_RECORDS) -> None:
        self.caller = caller
        self.recheck = recheck
        self.last: ChainState | None = None
        self._lock = threading.Lock()  # one check at a time, and the state's updates

    def check(self) -> ChainState:
        """The chain's state now: the last verification extended to the newest record (the
        first call walks the whole chain)."""
        with self._lock:
            last = self.last
            if last is None:
                last = self._walk(0, None, None)
            elif last.verification.ok:
                last = self._extend(last)
            self.last = last
            return last

    def full(self) -> ChainState:
        """Walk the whole chain again (page loads go on meanwhile)."""
        started = time.time()
        walked = self._walk(0, None, None)
        with self._lock:
            last = self.last
            if walked.verification.ok and last is not None:
                if not last.verification.ok and last.at > started:
                    return last  # a break a page load found since this walk began
                if last.verification.ok and last.verification.records > walked.verification.records:
                    walked = replace(last, full_at=walked.full_at)  # a load went further
            self.last = walked
            return walked

    def _extend(self, last: ChainState) -> ChainState:
        through = last.verification
        since = max(0, through.records - self.recheck)
        state = self._walk(since, through, last.full_at)
        if not state.verification.ok and state.verification.bad_seq is None:
            # the head verified before no longer has its hash: rewritten with new hashes
            problem = (
                f"record {through.records} no longer has the hash it was verified with at "
                f"{utc(last.at)}: the chain was rewritten or truncated since"
            )
            bad = replace(state.verification, bad_seq=through.records, problem=problem)
            state = replace(state, verification=bad)
        return state

    def _walk(
        self, since: int, through: audit.Verification | None, full_at: float | None
    ) -> ChainState:
        against = through.head_hash if through is not None and through.records else None
        with self.caller.store.session(read_only=True) as session:
            result = audit.verify(session, against, since=since)
        now = time.time()
        walked = max(0, result.records - since) if result.ok else 0
        return ChainState(result, now, now if since == 0 else full_at, walked)


class Upkeep:
    """The sweeps of one app (:class:`Timing`); :meth:`ensure_started` starts them in the
    running event loop, once per loop."""

    def __init__(self, caller: Caller, timing: Timing | None = None) -> None:
        self.caller = caller
        self.timing = timing or Timing()
        self.chain = ChainWatch(caller, self.timing.recheck)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._app: ASGIApp | None = None
        self.warmed: int | None = None  # the warm-up request's status, once it was answered
        self.settled = threading.Event()  # set once the start's work is done (first walk too)
        self._tasks: set[asyncio.Task[None]] = set()

    def ensure_started(self, app: ASGIApp | None = None) -> None:
        """Start the sweeps in the running loop, once per loop; ``app``: the app the
        warm-up sends its request to (none: the warm-up only reads)."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        self._loop = loop
        self._app = app
        self._tasks = {
            loop.create_task(_every(self.timing.quiet_every, self.sweep_quiet)),
            loop.create_task(self._chain()),
        }

    def warm_up(self) -> None:
        """Run the reads of a request's token check and of an alert's delivery once, for
        names nothing has (nothing is written): each statement is compiled the first time a
        process runs it, and the first alert after a start should cost what any other
        does."""
        with contextlib.suppress(Unauthenticated):
            authenticate(self.caller, WARM_UP_TOKEN)
        alerts.warm_up(self.caller)

    def stop(self) -> None:
        """Cancel the sweeps (the loop ending cancels them as well)."""
        for task in self._tasks:
            task.cancel()
        self._tasks, self._loop = set(), None

    def sweep_quiet(self) -> None:
        resolved = resolve_quiet_incidents(self.caller)
        if resolved:
            LOG.info("resolved incidents after their quiet period: %s", resolved)

    async def _chain(self) -> None:
        await _run(self.warm_up)  # before the walk, which may take seconds on a long chain
        if self._app is not None:
            try:
                self.warmed = await warm_request(self._app)
            except Exception:  # a warm-up that failed costs the first alert, nothing more
                LOG.exception("backout server: the warm-up request failed")
        heap.settle()  # what start-up and warm-up made, out of the cycle collector's way
        await _run(self.chain.check)  # the first (whole) walk, for the first page load
        self.settled.set()
        await _every(self.timing.verify_every, self.chain.full)


async def _every(seconds: float, work: Callable[[], Any]) -> None:
    """``work`` every ``seconds``, the first time ``seconds`` from now."""
    while True:
        await asyncio.sleep(seconds)
        await _run(work)


async def _run(work: Callable[[], Any]) -> None:
    """``work`` in a worker thread; an error is logged, and the next round tries again."""
    try:
        await asyncio.to_thread(work)
    except asyncio.CancelledError:
        raise
    except Exception:  # a store that went away: the next sweep tries again
        LOG.exception("backout server: %s failed", getattr(work, "__name__", work))


WARM_UP_BODY = json.dumps(
    {
        "version": "4",
        "groupKey": '{}:{alertname="warm-up"}',
        "status": "firing",
        "receiver": "warm-up",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "warm-up", "service": WARM_UP_SERVICE},
                "annotations": {},
                "startsAt": "2000-01-01T00:00:00Z",
                "fingerprint": "0",
            }
        ],
    }
).encode()


async def warm_request(app: ASGIApp) -> int:
    """Send ``app`` an Alertmanager webhook with :data:`WARM_UP_TOKEN`, in process, and
    read its whole answer: the status (401: no token is that one). The request's scope says
    it is the warm-up (:data:`WARM_UP_KEY`): the access log leaves it out."""
    path = f"{API}/alerts/alertmanager"
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"localhost"),
            (b"authorization", f"Bearer {WARM_UP_TOKEN}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(WARM_UP_BODY)).encode()),
        ],
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
        "state": {WARM_UP_KEY: True},
    }
    sent = False
    status = [0]

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": WARM_UP_BODY, "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            status[0] = int(message["status"])

    await app(scope, receive, send)
    return status[0]


class StartUpkeep:
    """ASGI middleware: the app's first event (its lifespan's start, or its first request)
    starts the sweeps in the serving event loop; a lifespan's end stops them."""

    def __init__(self, app: Any, upkeep: Upkeep) -> None:
        self.app = app
        self.upkeep = upkeep

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.upkeep.ensure_started(self.app)
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def receiving() -> Any:
            message = await receive()
            if message.get("type") == "lifespan.shutdown":
                self.upkeep.stop()
            return message

        await self.app(scope, receive, receiving)
