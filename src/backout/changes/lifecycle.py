"""Change states and the rules for moving between them (FROM set -> TO set, like runs).

::

    planned ──approve──▶ approved ──start──▶ in_progress ──▶ completed
       │                                         ├─────────▶ backed_out
       └──reject──▶ rejected                     └─────────▶ failed
"""

from __future__ import annotations

from enum import StrEnum

from backout.errors import ChangeTransitionError


class ChangeStatus(StrEnum):
    PLANNED = "planned"
    APPROVED = "approved"
    REJECTED = "rejected"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    BACKED_OUT = "backed_out"
    FAILED = "failed"


CHANGE_RULES: dict[ChangeStatus, frozenset[ChangeStatus]] = {
    ChangeStatus.PLANNED: frozenset({ChangeStatus.APPROVED, ChangeStatus.REJECTED}),
    ChangeStatus.APPROVED: frozenset({ChangeStatus.IN_PROGRESS, ChangeStatus.REJECTED}),
    ChangeStatus.IN_PROGRESS: frozenset(
        {ChangeStatus.COMPLETED, ChangeStatus.BACKED_OUT, ChangeStatus.FAILED}
    ),
    ChangeStatus.REJECTED: frozenset(),
    ChangeStatus.COMPLETED: frozenset(),
    ChangeStatus.BACKED_OUT: frozenset(),
    ChangeStatus.FAILED: frozenset(),
}

HINTS: dict[ChangeStatus, str] = {
    ChangeStatus.PLANNED: "it needs approval first: `backout change approve ID`",
    ChangeStatus.APPROVED: "start it with `backout change start ID` (after `backout gate ID`)",
    ChangeStatus.IN_PROGRESS: "finish it with `backout change complete ID`, or back out",
}


def check_change(change_id: int, current: ChangeStatus, target: ChangeStatus) -> None:
    """Refuse a move the rules do not list. A user asked for it, so it is a usage error
    (exit 2) that says where the change may go instead."""
    if target in CHANGE_RULES[current]:
        return
    allowed = ", ".join(sorted(CHANGE_RULES[current])) or "nothing (it is closed)"
    raise ChangeTransitionError(
        f"change {change_id} cannot go from {current} to {target}; from {current} it may go "
        f"to {allowed}",
        hint=HINTS.get(current, "a closed change cannot be reopened; create a new one"),
    )
