"""Failpoints: named places where a test can make this process die by SIGKILL.

``BACKOUT_FAILPOINTS="step_started:2,step_finished:4"`` kills the process right after
step 2's ``step_started`` is durable, or right after step 4's ``step_finished``. Points:
``before_step``, ``step_started``, ``action_done``, ``step_finished`` (with a 1-based step
number), ``verify_started``, ``check_finished`` (1-based check) and ``before_finish``.
It is how the crash tests hit every boundary exactly; unset, it costs one dict lookup.

A failpoint stands for a crash at an exact place, so what the process shows up to that
place is the same every time: the progress display prints the lines it was handed before
the kill (:func:`before_kill`; a real crash may lose the last of them).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable

_ARMED: frozenset[str] = frozenset(
    item.strip() for item in os.environ.get("BACKOUT_FAILPOINTS", "").split(",") if item.strip()
)


_BEFORE_KILL: list[Callable[[], None]] = []


def before_kill(call: Callable[[], None]) -> Callable[[], None]:
    """Have a failpoint call ``call`` before it kills the process (a display's flush);
    returns a function that takes it back."""
    _BEFORE_KILL.append(call)
    return lambda: _BEFORE_KILL.remove(call)


def armed(point: str, number: int | None = None) -> bool:
    """Whether a test asked to die at this point (what it stands for must happen as named:
    a step's end written on its own, not held for the next step's transaction)."""
    return bool(_ARMED) and (point if number is None else f"{point}:{number}") in _ARMED


def hit(point: str, number: int | None = None) -> None:
    if not _ARMED:
        return
    name = point if number is None else f"{point}:{number}"
    if name in _ARMED:
        for call in list(_BEFORE_KILL):
            with contextlib.suppress(Exception):  # the kill is the point; nothing stops it
                call()
        os.kill(os.getpid(), signal.SIGKILL)
