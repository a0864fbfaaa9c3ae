"""A long-lived process's heap, settled once its start-up is done.

CPython's cycle collector walks every object a generation holds; the oldest generation
holds everything a process imported and built at start (SQLAlchemy's and pydantic's
classes, the compiled statements, the plan), hundreds of thousands of objects that stay
alive until it exits. A full collection walked them all again, 75 to 110 ms on this
machine each time, about three times in a fresh watch: a pause that fell, now and then,
between an alert and its backout's first program. :func:`settle` moves what is alive now
out of the collector's sight (``gc.freeze``, which only relinks lists: microseconds);
later collections walk what was made after it. What was already garbage stays in memory
(a start-up's cycles, a few hundred kilobytes); the objects themselves are still freed as
usual when nothing refers to them.

Start-up is the other end: importing click, rich, pydantic and the store allocates some
hundreds of thousands of objects that all live to the end, and the collector, run every
700 allocations, walked them again and again while they were made (about 20 ms of a
250 ms `backout validate`). The command line :func:`hold`s the collector from its first
line and :func:`release`s it (freezing what start-up built) once the command is found.
"""

from __future__ import annotations

import gc

_settled = False
_held = False


def hold() -> None:
    """Pause the cycle collector for a start-up (nothing is freed late but cycles)."""
    global _held
    if gc.isenabled():
        gc.disable()
        _held = True


def release() -> None:
    """End a :func:`hold`: freeze what start-up built, then collect as usual again. Safe
    to call when nothing is held, and more than once."""
    global _held
    if _held:
        _held = False
        gc.freeze()
        gc.enable()


def settle() -> None:
    """Freeze the heap as it is, once per process: a process that now waits (a watch, a
    server) or runs steps should not pay again for walking its start-up's objects."""
    global _settled
    if _settled:
        return
    _settled = True
    gc.freeze()
