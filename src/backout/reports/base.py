"""What every typed result shares: its JSON is its fields; run outcomes' exit codes."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, cast

from backout.kernel.states import RunStatus

# a run still pending or running is not a failure: `status` of a live run exits 0
EXIT_CODES = {
    RunStatus.PENDING: 0,
    RunStatus.RUNNING: 0,
    RunStatus.SUCCEEDED: 0,
    RunStatus.FAILED: 1,
    RunStatus.NEEDS_ATTENTION: 3,
}


class _Record:
    """A typed result whose JSON is its fields (``--json`` and the API print this)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(cast(Any, self))
