"""Deliver notifications in the background while a command runs, so that a channel that
is slow or down never slows the backout: the engine only queues (in its own
transactions); this thread sends. When the command ends, what it queued gets a bounded
time to go out; whatever is left stays queued for ``backout notify send`` (or a worker)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

from backout.channels.delivery import Route, send_with
from backout.notify.dispatch import notify_route
from backout.notify.escalation import run_timers
from backout.store import outbox as queue
from backout.store.db import Store
from backout.store.models import OutboxRow

POLL_S = 0.1
TIMERS_S = 1.0  # escalation and update reminders are looked at this often


@dataclass
class Leftover:
    """What the command queued and could not deliver before it ended."""

    pending: int = 0
    errors: list[str] = field(default_factory=list)


class Courier:
    """``with Courier(store, actor):`` — deliver queued notifications until the block
    ends, then for up to ``flush`` seconds more (only what was queued meanwhile)."""

    def __init__(self, store: Store, actor: str, flush: float = 10.0) -> None:
        self.store = store
        self.actor = actor
        self.flush = flush
        self.route: Route = notify_route()
        self.leftover = Leftover()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="backout-courier", daemon=True)
        self._since = 0.0

    def __enter__(self) -> Courier:
        self._since = time.time()
        # one dispatcher for the courier's life: each channel's connection is opened once
        self._sender = self.route.channel.open(self.route.options)
        self._thread.start()
        return self

    def _loop(self) -> None:
        timers_at = 0.0
        while not self._stop.is_set():
            if self.store.opened:  # never open (or create) a store the command did not
                if time.monotonic() >= timers_at:
                    timers_at = time.monotonic() + TIMERS_S
                    self._timers()
                self._pass()
            self._stop.wait(POLL_S)

    def _timers(self) -> None:
        try:
            run_timers(self.store, self.actor)
        except Exception:  # a plan this version cannot read, the store gone: never crash
            return

    def _pass(self) -> list[str]:
        try:
            return send_with(
                self.store, self.route, self._sender, self.actor, 0.0, once=True, counts=False
            ).errors
        except Exception as exc:  # the store went away: the run says so; keep quiet here
            return [f"{type(exc).__name__}: {exc}"]

    def _ours(self) -> int:
        with self.store.session(read_only=True) as session:
            ours = self.route.matches() & (OutboxRow.created_at >= self._since)
            return queue.count(session, ours, queue.UNSENT)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        try:
            if self.store.opened:
                self._flush()
        finally:
            self._sender.close()

    def _flush(self) -> None:
        deadline = time.monotonic() + self.flush
        try:
            while True:
                errors = self._pass()
                pending = self._ours()
                if pending == 0 or time.monotonic() >= deadline:
                    self.leftover = Leftover(pending, errors[-3:])
                    return
                time.sleep(POLL_S)
        except Exception:  # the store is gone; the rows stay queued in it
            return
