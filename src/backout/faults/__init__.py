"""Faults a rehearsal injects into the backout (``rehearsal.faults:``, ``--fault``).

The public API for fault plugins: subclass :class:`Fault`, give it a ``kind`` and an
``Options`` model, and register it under the ``backout.faults`` entry point group.
"""

from __future__ import annotations

from backout.faults.base import FAULTS, Fault, FaultOptions
from backout.faults.builtin import FailCheck, FailFirst, Kill, Slow

for _fault in (FailFirst(), Slow(), FailCheck(), Kill()):
    FAULTS.register(_fault)

__all__ = ["FAULTS", "Fault", "FaultOptions"]
