"""Faults a rehearsal injects into the backout (``rehearsal.faults:``, ``--fault``).

The public API for fault plugins: subclass :class:`Fault`, give it a ``kind`` and an
``Options`` model (from :class:`FaultOptions`), answer in ``on_step`` (an
:class:`Outcome`), ``delay``, ``on_check`` (a :class:`Verdict`) or ``kills``, and
register it under the ``backout.faults`` entry point group.
"""

from __future__ import annotations

from backout.actions.base import Outcome
from backout.faults.base import FAULTS, Fault, FaultContext, FaultOptions
from backout.faults.builtin import (
    FailCheck,
    FailFirst,
    Kill,
    KillProcess,
    NoData,
    Slow,
    StoreDrop,
    TelemetryError,
)
from backout.probes.base import Verdict

for _fault in (
    FailFirst(),
    Slow(),
    FailCheck(),
    Kill(),
    KillProcess(),
    StoreDrop(),
    NoData(),
    TelemetryError(),
):
    FAULTS.register(_fault)

__all__ = ["FAULTS", "Fault", "FaultContext", "FaultOptions", "Outcome", "Verdict"]
