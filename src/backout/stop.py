"""Graceful stop: SIGTERM (and Ctrl-C, SIGHUP) stop a backout at a safe point, never
mid-write.

A signal never raises at an arbitrary place (that could tear a journal write in two).
The handler only writes the signal's number to a pipe; a helper thread reads it and
*requests* the stop, and the engine acts on it where it is safe — before a step starts,
between retries, between checks, on every watch tick — by raising :class:`Stopped` there.
Running steps are *killed* (their process groups, SIGTERM then SIGKILL) at once, or after
a drain period (``backout worker`` lets the step in flight finish first); a step killed
this way is left interrupted in the journal, never recorded as failed, so
``backout resume`` decides about it as after a crash.

A second signal kills running steps at once, without the grace period; a third gives up
on stopping gracefully and lets the signal end the process.

The CLI turns :class:`Stopped` into one line saying how to resume and exit ``128 + signal``
(143 for SIGTERM, 130 for Ctrl-C, 129 for SIGHUP).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

GIVE_UP_AFTER = 3  # signals: the third one is not graceful any more


class Stopped(BaseException):
    """The process was asked to stop. A BaseException, like KeyboardInterrupt, so that no
    ``except Exception`` on the way up mistakes it for a failure of the step."""

    def __init__(self, signum: int, *, run_id: str | None = None, where: str = "") -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.run_id = run_id
        self.where = where  # e.g. "during step 2 'restart'"
        self.abandoned = False  # an in-process action was still running when we gave up

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopToken:
    """Process-wide: has a stop been requested, and have running steps been killed?"""

    def __init__(self) -> None:
        self._requested = threading.Event()
        self.killing = threading.Event()
        self.signum: int = signal.SIGTERM
        self._killers: list[Callable[[float | None], object]] = []

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    def request(self, signum: int) -> None:
        self.signum = signum
        self._requested.set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True (at once) when a stop is requested."""
        return self._requested.wait(max(0.0, seconds))

    def sleep(self, seconds: float) -> None:
        """For actions: sleep, but raise :class:`Stopped` as soon as running steps are being
        killed (a drained stop lets the sleep end on its own)."""
        if self.killing.wait(max(0.0, seconds)):
            raise Stopped(self.signum)

    def check(self) -> None:
        if self._requested.is_set():
            raise Stopped(self.signum)

    def on_kill(self, killer: Callable[[float | None], object]) -> None:
        """Register what stops running work, given a grace period (None: its default)."""
        if killer not in self._killers:
            self._killers.append(killer)

    def kill(self, grace: float | None = None) -> None:
        """Stop running work now (idempotent)."""
        self.killing.set()
        for killer in list(self._killers):
            killer(grace)

    def reset(self) -> None:
        """Forget a stop (tests, and a process that handled one and goes on)."""
        self._requested.clear()
        self.killing.clear()


STOP = StopToken()


class _Signals:
    """The helper thread that turns signal numbers read from a pipe into stop requests."""

    def __init__(self, drain: float) -> None:
        self.drain = drain
        self.count = 0  # written only by the handler (the main thread)
        self.read, self.write = os.pipe()
        os.set_blocking(self.write, False)
        self.timer: threading.Timer | None = None
        self.thread = threading.Thread(target=self._loop, name="backout-signals", daemon=True)

    def handler(self, signum: int, frame: FrameType | None) -> None:
        # runs in the main thread between two bytecodes, maybe inside a lock it holds:
        # take no lock here, only write to the pipe
        self.count += 1
        if self.count >= GIVE_UP_AFTER:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        with contextlib.suppress(BlockingIOError):
            os.write(self.write, bytes([signum]))

    def _loop(self) -> None:
        seen = 0
        while True:
            data = os.read(self.read, 1)
            if not data or data == b"\0":
                return
            seen += 1
            STOP.request(data[0])
            if seen == 1 and self.drain > 0:
                self.timer = threading.Timer(self.drain, STOP.kill)
                self.timer.daemon = True
                self.timer.start()
            else:
                STOP.kill(None if seen == 1 else 0.0)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self.write, b"\0")
        self.thread.join(5)
        if self.timer is not None:
            self.timer.cancel()
        os.close(self.read)
        os.close(self.write)


@contextmanager
def on_signals(drain: float = 0.0) -> Iterator[StopToken]:
    """While inside: SIGTERM, SIGINT and SIGHUP request a stop (the last two only if they
    are not ignored, as in a background job or under nohup). Running steps are killed at
    once, or after ``drain`` seconds; a second signal kills them at once. Outside the
    main thread (where Python allows no handlers) nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield STOP
        return
    STOP.reset()
    signals = _Signals(drain)
    signals.thread.start()
    wanted = [signal.SIGTERM]
    # Ctrl-C and a closed terminal too, unless ignored (a background job, nohup)
    wanted += [s for s in (signal.SIGINT, signal.SIGHUP) if signal.getsignal(s) != signal.SIG_IGN]
    previous = {number: signal.signal(number, signals.handler) for number in wanted}
    try:
        yield STOP
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
        signals.close()
        STOP.reset()
