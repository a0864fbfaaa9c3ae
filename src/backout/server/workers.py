"""Workers inside the server: ``backout server --workers N``.

Each worker is a thread running the loop of ``backout worker`` (:func:`backout.commands.work`):
it claims a run that no live executor holds — one started through ``POST /api/v1/runs``,
or one whose executor died — with ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL,
executes it under a heartbeat-renewed lease, and sleeps on the workers' doorbell
between runs. Servers on one store share the work that way: two behind a load balancer
never run one run twice, and a killed server's runs are taken over by the other's
workers once its lease expires (at once on the same host: its exit is watched).

A stop signal drains them, as it drains ``backout worker``: the signal handler only
writes the signal's number to a pipe (it takes no lock); a helper thread then requests the
process-wide stop (:data:`backout.stop.STOP`), so the workers claim nothing new, and the
step in flight may finish for up to ``drain`` seconds before it is stopped. Each run in
hand is journalled as stopped at a safe point and its lease handed back, for another
worker to go on with. A second signal stops running steps at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading

from backout import commands
from backout.commands.caller import Caller
from backout.engine.journal import Observer
from backout.engine.runner import LAG_FOR
from backout.errors import BackoutError
from backout.kernel.events import Event, EventKind
from backout.notify.courier import Courier
from backout.plans import notify_defaults
from backout.server.live_metrics import EVALUATIONS
from backout.settings import Settings
from backout.stop import STOP, Stopped
from backout.store.db import Store

LOG = logging.getLogger("backout.server.workers")
DEFAULT_INTERVAL = 2.0  # seconds between two looks for work when no doorbell rings
DEFAULT_DRAIN = 30.0  # seconds the step in flight may go on after a stop signal
JOIN_SLACK_S = 30.0  # after the drain: stopping the step, journalling, releasing the lease
RETRY_S = 1.0  # after an error of the store: try again this much later
# the events a worker logs: a run claimed, and how it ended
LOGGED = frozenset(
    {
        EventKind.RUN_STARTED,
        EventKind.RUN_RESUMED,
        EventKind.RUN_FINISHED,
        EventKind.RUN_NEEDS_ATTENTION,
    }
)


class Workers:
    """``count`` worker threads over ``caller``'s store, from :meth:`start` until
    :meth:`stop`; :meth:`signal` is what a signal handler calls."""

    def __init__(
        self,
        caller: Caller,
        count: int,
        *,
        interval: float = DEFAULT_INTERVAL,
        drain: float = DEFAULT_DRAIN,
    ) -> None:
        self.caller = caller
        self.count = count
        self.interval = interval
        self.drain = drain
        self.stopped_runs: list[str] = []  # runs handed back on a stop, by id
        self._threads: list[threading.Thread] = []
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._relay = threading.Thread(target=self._relay_loop, name="backout-workers-stop")
        self._relay.daemon = True
        self._timer: threading.Timer | None = None
        self._courier: Courier | None = None

    def start(self) -> None:
        """Start the threads (none when ``count`` is 0) and the courier that delivers the
        runs' notifications."""
        if self.count <= 0:
            return
        if LOG.level == logging.NOTSET:  # the server logs warnings only; these are news
            LOG.setLevel(logging.INFO)
        STOP.reset()
        self._relay.start()
        self._courier = Courier(self.caller.store, self.caller.actor)
        self._courier.__enter__()
        for number in range(1, self.count + 1):
            thread = threading.Thread(
                target=self._loop, args=(number,), name=f"backout-worker-{number}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def signal(self, signum: int) -> None:
        """Ask the workers to drain (from a signal handler: only a write to a pipe)."""
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._write, bytes([signum]))

    def stop(self, signum: int) -> bool:
        """Drain (if no signal did yet) and wait for the threads: up to the drain period
        and the time to stop a step after it. True when every thread ended; the courier
        then has a few seconds to send what the stop journalled."""
        if not self._threads:
            self._close()
            return True
        if not STOP.requested:
            self.signal(signum)
        limit = self.drain + JOIN_SLACK_S
        for thread in self._threads:
            thread.join(limit)
        ended = not any(thread.is_alive() for thread in self._threads)
        if not ended:
            LOG.error("a worker did not stop within %gs; its run is left to be taken over", limit)
        if self._courier is not None:
            self._courier.__exit__(None, None, None)
        self._close()
        return ended

    def _close(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._write, b"\0")
        if self._relay.is_alive():
            self._relay.join(5)
        if self._timer is not None:
            self._timer.cancel()
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _relay_loop(self) -> None:
        """Signals read from the pipe: the first requests the stop (steps stopped after the
        drain), the next stops running steps at once."""
        seen = 0
        while True:
            data = os.read(self._read, 1)
            if not data or data == b"\0":
                return
            seen += 1
            STOP.request(data[0])
            if seen == 1 and self.drain > 0:
                self._timer = threading.Timer(self.drain, STOP.kill)
                self._timer.daemon = True
                self._timer.start()
            else:
                STOP.kill(None if seen == 1 else 0.0)

    def _loop(self, number: int) -> None:
        """One worker: ``backout worker``'s loop until a stop; an error of the store (it
        went away, a transaction failed) is logged and the loop goes on after a pause. The
        watches it runs count their evaluations for the server's /metrics."""
        LAG_FOR.set(EVALUATIONS.for_service)  # this thread's context: its runs only
        while not STOP.requested:
            try:
                commands.work(self.caller, interval=self.interval, observer=_log_event(number))
            except Stopped as stop:
                if stop.run_id is not None:
                    self.stopped_runs.append(stop.run_id)
                    LOG.warning(
                        "worker %d: stopped run %s %s on %s; handed back for another worker",
                        number,
                        stop.run_id,
                        stop.where or "between steps",
                        stop.name,
                    )
                return
            except BackoutError as exc:
                LOG.error("worker %d: %s (%s)", number, exc.message, exc.hint or "retrying")
                STOP.wait(RETRY_S)
            except Exception as exc:  # a worker never dies of one run: the next look goes on
                LOG.error("worker %d: %s: %s", number, type(exc).__name__, exc)
                STOP.wait(RETRY_S)


def _log_event(number: int) -> Observer:
    """Log the runs a worker claims and how they end."""

    def observe(event: Event, _view: object) -> None:
        if event.kind in LOGGED:
            LOG.info("worker %d: run %s: %s", number, event.run_id, event.kind)

    return observe


def worker_caller(store: Store, settings: Settings) -> Caller:
    """The workers' caller: the server's store, actor, lease settings and notify defaults."""
    defaults = None
    if settings.notify_defaults is not None:
        defaults = notify_defaults(settings.notify_defaults, settings.config_file or "")
    return Caller(store, settings.actor, settings.lease_ttl, defaults, settings.heartbeat)
