"""Call an action or check with a hard deadline, turning every failure into a result.

Built-in actions honour their timeout themselves; this guard is for plugins that do not,
so that nothing waits forever: after ``timeout + grace`` the run moves on. The call runs
in a thread that carries the caller's context variables (the step's spawn hook); the
thread is kept for the next call once this one returned (one given up on keeps its own).

A stop (:mod:`backout.stop`) is not a failure: :class:`~backout.stop.Stopped` raised by the
call comes out of here as it is; and once running steps are being killed, an in-process
call that has not returned within ``ABANDON_S`` is abandoned (``Stopped.abandoned``), so a
stop never waits on a slow HTTP call.
"""

from __future__ import annotations

import contextvars
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from backout.errors import BackoutError
from backout.stop import STOP, Stopped

T = TypeVar("T")
GRACE_S = 5.0
ABANDON_S = 3.0
_POLL_S = 0.05


def with_deadline(call: Callable[[], T], timeout: float, on_error: Callable[[str], T]) -> T:
    box: dict[str, T] = {}
    failure: list[str] = []
    stopped: list[Stopped] = []

    def target() -> None:
        try:
            box["value"] = call()
        except Stopped as exc:
            stopped.append(exc)
        except BackoutError as exc:
            failure.append(f"{exc.message} (hint: {exc.hint})" if exc.hint else exc.message)
        except BaseException as exc:  # a plugin's sys.exit() too: the step failed
            failure.append(f"{type(exc).__name__}: {exc}")

    context = contextvars.copy_context()
    worker = _Worker.take()
    worker.run(lambda: context.run(target))
    try:
        finished = _join(worker.done, time.monotonic() + timeout + GRACE_S)
    except Stopped:
        worker.abandon()
        raise
    if not finished:
        worker.abandon()
        return on_error(f"did not return within its timeout of {timeout:g}s")
    worker.give_back()
    if stopped:
        raise stopped[0]
    if failure:
        return on_error(failure[0])
    return box["value"]


def _join(done: threading.Event, deadline: float) -> bool:
    """Wait for the call; False at its deadline. Raises Stopped when it is abandoned."""
    abandon_at: float | None = None
    while not done.is_set():
        now = time.monotonic()
        if now >= deadline:
            return False
        if STOP.killing.is_set():
            abandon_at = abandon_at or now + ABANDON_S
            if now >= abandon_at:
                stop = Stopped(STOP.signum)
                stop.abandoned = True
                raise stop
        done.wait(min(_POLL_S, deadline - now))
    return True


class _Worker:
    """A thread that runs calls one at a time, kept between them: a step's call runs on
    the thread of a call that ended before (starting a thread costs about 0.1 ms a step).
    A call given up on keeps its thread, which ends once the call returns."""

    _idle: list[_Worker] = []
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.done = threading.Event()
        self._calls: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="backout-action", daemon=True).start()

    @classmethod
    def take(cls) -> _Worker:
        with cls._lock:
            if cls._idle:
                return cls._idle.pop()
        return cls()

    def run(self, call: Callable[[], None]) -> None:
        self.done.clear()
        self._calls.put(call)

    def give_back(self) -> None:
        with self._lock:
            self._idle.append(self)

    def abandon(self) -> None:
        self._calls.put(None)  # after the call it is running: the thread ends

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            try:
                call()  # with_deadline's: it catches everything the action raises
            finally:
                self.done.set()

    @classmethod
    def forget_in_child(cls) -> None:
        """In a forked child: the parent's threads are not there."""
        cls._idle = []
        cls._lock = threading.Lock()  # another thread may have held it at the fork


os.register_at_fork(after_in_child=_Worker.forget_in_child)
