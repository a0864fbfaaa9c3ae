"""Call an action or check with a hard deadline, turning every failure into a result.

Built-in actions honour their timeout themselves; this guard is for plugins that do not,
so that nothing waits forever: after ``timeout + grace`` the run moves on. The call runs
in a thread that carries the caller's context variables (the step's spawn hook).

A stop (:mod:`backout.stop`) is not a failure: :class:`~backout.stop.Stopped` raised by the
call comes out of here as it is; and once running steps are being killed, an in-process
call that has not returned within ``ABANDON_S`` is abandoned (``Stopped.abandoned``), so a
stop never waits on a slow HTTP call.
"""

from __future__ import annotations

import contextvars
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
        except Exception as exc:
            failure.append(f"{type(exc).__name__}: {exc}")

    context = contextvars.copy_context()
    thread = threading.Thread(
        target=lambda: context.run(target), name="backout-action", daemon=True
    )
    thread.start()
    if not _join(thread, time.monotonic() + timeout + GRACE_S):
        return on_error(f"did not return within its timeout of {timeout:g}s")
    if stopped:
        raise stopped[0]
    if failure:
        return on_error(failure[0])
    return box["value"]


def _join(thread: threading.Thread, deadline: float) -> bool:
    """Wait for the call; False at its deadline. Raises Stopped when it is abandoned."""
    abandon_at: float | None = None
    while thread.is_alive():
        now = time.monotonic()
        if now >= deadline:
            return False
        if STOP.killing.is_set():
            abandon_at = abandon_at or now + ABANDON_S
            if now >= abandon_at:
                stop = Stopped(STOP.signum)
                stop.abandoned = True
                raise stop
        thread.join(min(_POLL_S, deadline - now))
    return True
