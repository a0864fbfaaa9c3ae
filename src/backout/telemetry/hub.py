"""Telemetry for many watches in one process: one asyncio loop, one HTTP connection pool,
each target read once per interval however many signals read it.

A watch of one deployment reads its signals itself (``Sampler.read`` in its own thread).
A process watching a fleet instead *subscribes* each signal to a :class:`TelemetryHub`:

* ``scrape``: one GET and one parse of a ``/metrics`` URL per interval, shared by every
  signal on that URL (each keeps its own previous scrape, so its rates are its own);
* ``prometheus``: one query per (server, expression) per interval, shared by every signal
  asking it; the queries one server gets at one interval go out together, in one burst over
  the pooled connections (at most :data:`PER_SERVER` at once), instead of one by one;
* any other kind (``http_probe``, ``command``, plugins): its own sampler, read in a bounded
  thread pool, so a slow command never holds up the others.

Each reading is handed to its subscribers with the moment it was *due*: the watch measures
its evaluation lag (due to fed to the detectors) from it. Scrape targets are spread over
their interval (by URL), so a thousand of them do not all fire in the same millisecond.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
import zlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from backout.telemetry._http import Failure, aget
from backout.telemetry.base import Reading, Sampler, SourceContext

if TYPE_CHECKING:
    import httpx
    from pydantic import BaseModel

    from backout.telemetry.scrape import Scrape, ScrapeSampler

Deliver = Callable[[Reading, float], None]  # (reading, when it was due: time.monotonic())
PER_SERVER = 16  # requests in flight to one server at once
THREADS = 8  # samplers of other kinds read at once
MAX_CONNECTIONS = 200  # the shared pool's connections, over all servers


@dataclass(eq=False)
class Subscription:
    """One signal's share of a target; :meth:`TelemetryHub.unsubscribe` ends it."""

    target: _Target
    deliver: Deliver
    ctx: SourceContext
    options: Any
    sampler: Sampler | None = None  # scrape: its own state over the shared scrapes


@dataclass(eq=False)
class _Target:
    key: tuple[Any, ...]
    kind: str
    interval: float
    timeout: float
    options: Any
    phase: float = 0.0
    subscribers: list[Subscription] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    closed: bool = False  # its last subscriber left (its task is cancelled)
    last: Any = None  # scrape: the latest Scrape | Failure, a newcomer's first scrape


class TelemetryHub:
    """Runs the loop in a thread of its own; :meth:`subscribe` from any thread."""

    def __init__(self, *, per_server: int = PER_SERVER, threads: int = THREADS) -> None:
        self.per_server = per_server
        self._targets: dict[tuple[Any, ...], _Target] = {}
        self._servers: dict[str, asyncio.Semaphore] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(threads, "backout-telemetry")
        self._loop = asyncio.new_event_loop()
        self._client: httpx.AsyncClient | None = None
        self._thread = threading.Thread(target=self._run, name="backout-telemetry", daemon=True)
        self._started = threading.Event()
        self.requests = 0  # HTTP requests sent (what sharing saves shows here)

    # --- life -----------------------------------------------------------------------------
    def __enter__(self) -> TelemetryHub:
        self._thread.start()
        self._started.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        import httpx

        asyncio.set_event_loop(self._loop)
        limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=100)
        self._client = httpx.AsyncClient(limits=limits)
        self._started.set()
        self._loop.run_forever()
        self._loop.close()

    async def _shutdown(self) -> None:
        tasks = [t.task for t in self._targets.values() if t.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    def _call(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    # --- subscribing ----------------------------------------------------------------------
    def subscribe(
        self,
        kind: str,
        options: BaseModel,
        ctx: SourceContext,
        interval: float,
        deliver: Deliver,
    ) -> Subscription:
        """Readings of this signal every ``interval`` from now on, to ``deliver`` (called in
        the hub's thread: it must only hand the reading over)."""
        key = _key(kind, options, interval, ctx)
        joining = self._join(key, kind, options, ctx, interval, deliver)
        subscription: Subscription = self._call(joining)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if self._thread.is_alive():
            self._call(self._leave(subscription))

    async def _join(
        self,
        key: tuple[Any, ...],
        kind: str,
        options: Any,
        ctx: SourceContext,
        interval: float,
        deliver: Deliver,
    ) -> Subscription:
        """In the loop (targets are only ever touched there): find or make the target."""
        target = self._targets.get(key)
        if target is None:
            target = self._targets[key] = _Target(key, kind, interval, ctx.timeout, options)
            target.phase = _phase(kind, options, interval)
        subscription = Subscription(target, deliver, ctx, options)
        if kind == "scrape":
            if target.last is None:  # the target's first scrape: a newcomer's starting point
                target.last = await self._scrape(target)
            subscription.sampler = _scrape_sampler(subscription, target.last)
        elif kind != "prometheus":
            subscription.sampler = await self._loop.run_in_executor(
                self._pool, _open, kind, options, ctx
            )
        if self._targets.setdefault(key, target) is not target:  # replaced while we waited
            target = subscription.target = self._targets[key]
        target.subscribers.append(subscription)
        if target.task is None or target.closed:
            target.closed = False
            target.task = self._loop.create_task(self._tick(target))
        return subscription

    async def _leave(self, subscription: Subscription) -> None:
        target = subscription.target
        with contextlib.suppress(ValueError):
            target.subscribers.remove(subscription)
        if not target.subscribers and self._targets.get(target.key) is target:
            del self._targets[target.key]
            target.closed = True
            if target.task is not None:
                target.task.cancel()

    # --- reading --------------------------------------------------------------------------
    async def _tick(self, target: _Target) -> None:
        """Read the target every interval, on its phase; a late read skips the ticks it
        missed rather than bunching them up."""
        clock, interval = time.monotonic, target.interval
        now = clock()
        due = now - now % interval + target.phase
        due += interval if due <= now else 0.0
        while True:
            await asyncio.sleep(max(0.0, due - clock()))
            await self._read(target, due)
            due += interval
            if due <= clock():
                due += ((clock() - due) // interval + 1) * interval

    async def _read(self, target: _Target, due: float) -> None:
        subscribers = list(target.subscribers)
        if not subscribers:
            return
        if target.kind == "scrape":
            target.last = result = await self._scrape(target)
            for subscription in subscribers:
                assert subscription.sampler is not None
                reading = subscription.sampler.reading_from(result)  # type: ignore[attr-defined]
                subscription.deliver(reading, due)
        elif target.kind == "prometheus":
            reading = await self._query(target, subscribers[0].ctx)
            for subscription in subscribers:
                subscription.deliver(reading, due)
        else:
            readings = await asyncio.gather(*(self._threaded(s) for s in subscribers))
            for subscription, reading in zip(subscribers, readings, strict=True):
                subscription.deliver(reading, due)

    async def _get(
        self, url: str, timeout: float, headers: dict[str, str], params: dict[str, str] | None
    ) -> httpx.Response | Failure:
        assert self._client is not None
        server = self._servers.setdefault(_origin(url), asyncio.Semaphore(self.per_server))
        async with server:
            self.requests += 1
            return await aget(self._client, url, timeout=timeout, headers=headers, params=params)

    async def _scrape(self, target: _Target) -> Scrape | Failure:
        from backout.telemetry.scrape import scraped

        options = target.options
        response = await self._get(options.url, target.timeout, options.headers, None)
        return scraped(options.url, response, time.time())

    async def _query(self, target: _Target, ctx: SourceContext) -> Reading:
        from backout.telemetry import prometheus

        options = target.options
        url, params = prometheus.endpoint(options), prometheus.params(options, ctx)
        response = await self._get(url, target.timeout, options.headers, params)
        return prometheus.answer(response, ctx.clock(), prometheus.where(options))

    async def _threaded(self, subscription: Subscription) -> Reading:
        sampler = subscription.sampler
        assert sampler is not None
        try:
            return await self._loop.run_in_executor(self._pool, sampler.read)
        except Exception as exc:  # a plugin's sampler that raises is a reading, not a crash
            return Reading.missing(time.time(), "error", f"{type(exc).__name__}: {exc}")


def _key(kind: str, options: BaseModel, interval: float, ctx: SourceContext) -> tuple[Any, ...]:
    """Signals reading the same thing the same way share a target."""
    if kind == "scrape":
        headers = tuple(sorted(options.headers.items()))  # type: ignore[attr-defined]
        return (kind, options.url, headers, interval, ctx.timeout)  # type: ignore[attr-defined]
    if kind == "prometheus":
        return (kind, options.model_dump_json(), interval, ctx.timeout)
    return (kind, object(), interval)  # never shared: a command may read its own environment


def _phase(kind: str, options: Any, interval: float) -> float:
    """Where in its interval a target is read: scrape targets spread by URL; the queries of
    one Prometheus server at one interval together, at the start of the interval."""
    if kind != "scrape":
        return 0.0
    return zlib.crc32(str(options.url).encode()) / 2**32 * interval


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _scrape_sampler(subscription: Subscription, first: Scrape | Failure) -> ScrapeSampler:
    from backout.telemetry.scrape import ScrapeSampler

    return ScrapeSampler(subscription.options, subscription.ctx, first)


def _open(kind: str, options: Any, ctx: SourceContext) -> Sampler:
    from backout.telemetry import SOURCES

    return SOURCES.get(kind).open(options, ctx)
