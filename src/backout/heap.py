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
"""

from __future__ import annotations

import gc

_settled = False


def settle() -> None:
    """Freeze the heap as it is, once per process: a process that now waits (a watch, a
    server) or runs steps should not pay again for walking its start-up's objects."""
    global _settled
    if _settled:
        return
    _settled = True
    gc.freeze()
