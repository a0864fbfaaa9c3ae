"""The demo's rehearsal beat: what the gate says of the drill just recorded."""

from __future__ import annotations

from pathlib import Path

from backout import commands


def gate_rehearsal(caller: commands.Caller, path: Path) -> str:
    """The gate's rehearsal check, under the policy for the plan's risk (as `backout drills
    due` reads it)."""
    [status] = commands.drills_due(caller, [path])
    return ("FAIL: " if status.due else "pass: ") + status.reason
