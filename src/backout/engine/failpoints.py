"""Failpoints: named places where a test can make this process die by SIGKILL.

``BACKOUT_FAILPOINTS="step_started:2,step_finished:4"`` kills the process right after
step 2's ``step_started`` is durable, or right after step 4's ``step_finished``. Points:
``before_step``, ``step_started``, ``action_done``, ``step_finished`` (with a 1-based step
number), ``verify_started``, ``check_finished`` (1-based check) and ``before_finish``.
It is how the crash tests hit every boundary exactly; unset, it costs one dict lookup.
"""

from __future__ import annotations

import os
import signal

_ARMED: frozenset[str] = frozenset(
    item.strip() for item in os.environ.get("BACKOUT_FAILPOINTS", "").split(",") if item.strip()
)


def hit(point: str, number: int | None = None) -> None:
    if not _ARMED:
        return
    name = point if number is None else f"{point}:{number}"
    if name in _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
