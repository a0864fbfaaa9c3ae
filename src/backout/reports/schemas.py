"""The published JSON Schemas of what ``--json`` prints (docs/json-output.md).

Each schema is generated from the typed result the command prints (a dataclass of this
package), so a field added to a report is in its schema at once. A command whose output
is not one report has its shape written here as a ``TypedDict``: ``journal`` (the
events, as ``backout.render.journal_json`` prints them), ``explain`` and ``fleet``.

``python -m backout.reports.schemas NAME`` prints one (draft 2020-12); without a name,
the names. The promise: within a minor version a field is never removed, renamed or
given another type; new fields may appear, so a reader must ignore the ones it does not
know (the schemas allow them).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import TypeAdapter
from typing_extensions import TypedDict  # pydantic reads its fields on Python 3.11

from backout.reports.changes import ChangeReport, GateReport, RehearsalReport, RehearsalSummary
from backout.reports.runs import (
    AuditEntry,
    Checkpoint,
    DryRunReport,
    RunReport,
    RunSummary,
    SnapshotReport,
)
from backout.reports.tokens import CreatedToken, TokenSummary

DIALECT = "https://json-schema.org/draft/2020-12/schema"


class JournalEntry(TypedDict):
    """One event of ``backout journal --json``."""

    seq: int  # 1, 2, … in the order the events were written
    at: float  # Unix time, seconds
    kind: str  # run_created, step_started, … (`backout notify events` lists notify events)
    step: int | None  # the step or check number the text shows (1-based), or null
    step_index: int | None  # its 0-based place in the plan's list, or null
    attempt: int | None  # the attempt number (1-based), or null
    data: dict[str, Any]  # the event's fields, as the text shows them after the kind


class Explanation(TypedDict):
    """``backout explain --json``: the run, and the explanation's lines in order."""

    run: RunReport
    explanation: list[str]


class RehearseOutput(TypedDict):
    """``backout rehearse --json``: each drill, and the percentiles of their timings."""

    drills: list[RehearsalReport]
    percentiles: dict[str, Any]


class FleetLag(TypedDict):
    """Evaluation lag over every reading of a fleet's watch (seconds; null without any)."""

    readings: int
    p50_s: float | None
    p99_s: float | None
    max_s: float | None


class FleetDeployment(TypedDict):
    """One watched deployment: its run's report, or why it has none (not started, stopped)."""

    plan: str  # the plan file
    service: str
    run_id: str | None  # null when its run could not be made
    exit_code: int  # what `backout watch PLAN` alone would have exited with
    error: str | None  # why it did not end with a report (a stop, a refusal), or null
    run: RunReport | None


class FleetOutput(TypedDict):
    """``backout watch --json`` over several plans: a report per deployment."""

    deployments: int
    exit_code: int  # the worst of the deployments' (1, then 2, 3, 4), or a stop's
    lag: FleetLag
    telemetry_requests: int  # HTTP requests the shared telemetry sent
    runs: list[FleetDeployment]


# name -> (the type printed, the commands that print it)
OUTPUTS: dict[str, tuple[Any, str]] = {
    "run": (
        RunReport,
        "run, status, resume, deploy, watch (and `run` in explain)",
    ),
    "runs": (list[RunSummary], "runs"),
    "journal": (list[JournalEntry], "journal"),
    "explain": (Explanation, "explain"),
    "snapshot": (SnapshotReport, "snapshot"),
    "dry-run": (DryRunReport, "run --dry-run"),
    "rehearse": (RehearseOutput, "rehearse"),
    "rehearsals": (list[RehearsalSummary], "rehearsals"),
    "audit-log": (list[AuditEntry], "audit log"),
    "audit-checkpoint": (Checkpoint, "audit checkpoint"),
    "change": (ChangeReport, "change show, change create, change approve, …"),
    "gate": (GateReport, "gate"),
    "fleet": (FleetOutput, "watch with several plans or a folder"),
    "token-created": (CreatedToken, "token create"),
    "tokens": (list[TokenSummary], "token list"),
    "token": (TokenSummary, "token revoke"),
}


def output_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of one ``--json`` output (a name of ``OUTPUTS``)."""
    if name not in OUTPUTS:
        raise KeyError(f"no output named {name!r}; known: {', '.join(OUTPUTS)}")
    kind, commands = OUTPUTS[name]
    schema = TypeAdapter(kind).json_schema(mode="serialization")
    return {
        "$schema": DIALECT,
        "$id": f"backout:output/{name}",
        "title": f"backout {name} --json",
        "description": f"Printed by `backout {commands.split(',')[0]} --json` ({commands}).",
        **schema,
    }


def main(argv: list[str]) -> int:
    if not argv:
        print("\n".join(OUTPUTS))
        return 0
    try:
        print(json.dumps(output_schema(argv[0]), indent=2))
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
