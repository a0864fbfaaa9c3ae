"""The demo's closing summary for people (``--json`` prints the result dict instead)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from backout.render import seconds, styled

# journal bookkeeping in a decision's evidence, not numbers a reader weighs
NOT_EVIDENCE = frozenset({"at", "source", "test_started_at", "breach_started_at"})


def print_summary(console: Console, result: dict[str, Any]) -> None:
    console.print()
    console.print(steps_table(result))
    for line in summary_lines(result):
        console.print(line, soft_wrap=True)


def steps_table(result: dict[str, Any]) -> Table:
    table = Table(title=f"deploy run {result['run_id']}", title_justify="left")
    for column in ("phase", "step", "outcome", "duration"):
        table.add_column(column)
    for step in result["steps"]:
        table.add_row(
            step["phase"],
            escape(step["name"]),
            styled(step["outcome"]),
            seconds(step["duration_s"]),
        )
    for check in result["checks"]:
        outcome = "succeeded" if check["passed"] else "failed"
        table.add_row("verify", escape(check["name"]), styled(outcome), "")
    return table


def summary_lines(result: dict[str, Any]) -> list[str]:
    traffic = result["traffic"]
    errors = sum(n for code, n in traffic["by_code"].items() if code.startswith("5"))
    lines = [*_baseline_lines(result), *_trigger_lines(result), _restored_line(result)]
    lines.append(
        f"users saw {errors} errors and {traffic['connection_errors']} failed connections "
        f"in {traffic['requests']} requests"
    )
    if result.get("error_rate_after") is not None:
        lines.append(f"error rate after the backout: {result['error_rate_after']:.1%}")
    lines += _told_lines(result)
    lines.append(_cleanup_line(result))
    return lines


def _baseline_lines(result: dict[str, Any]) -> list[str]:
    return [
        f"baseline of {escape(name)}: {s['events']} of {s['trials']} requests failed "
        f"while the snapshot watched {escape(result['baseline']['release'])}"
        for name, s in result["baseline_telemetry"].items()
        if s.get("trials") is not None
    ]


def _trigger_lines(result: dict[str, Any]) -> list[str]:
    trigger = result["trigger"]
    if trigger is None:
        return ["no trigger fired"]
    after = result["detected_after_s"]
    when = f"after [bold]{after:.2f}s[/]" if after is not None else "before the fault"
    lines = [
        f"detected {when} by {escape(repr(trigger['name']))} ({trigger['kind']}): "
        f"{escape(str(trigger['summary']))}"
    ]
    evidence = _evidence(trigger["evidence"])
    if evidence:
        lines.append(f"  evidence: {escape(evidence)}")
    return lines


def _evidence(evidence: dict[str, Any]) -> str:
    shown = [
        f"{key} = {f'{value:.4g}' if isinstance(value, float) else value}"
        for key, value in evidence.items()
        if key not in NOT_EVIDENCE and isinstance(value, int | float | str)
    ]
    return ", ".join(shown)


def _restored_line(result: dict[str, Any]) -> str:
    if result["restored_after_s"] is None:
        return f"{styled(result['outcome'])}: {escape(result['message'])}"
    return (
        f"{styled(result['outcome'])}: restored and verified [bold]"
        f"{result['restored_after_s']:.2f}s[/] after the fault began "
        f"(demo took {result['duration_s']:.1f}s)"
    )


def _told_lines(result: dict[str, Any]) -> list[str]:
    """What people were told (the demo's inbox stands in for Slack, PagerDuty …)."""
    told = result.get("notifications") or []
    lines = [f"told {len(told)} notification(s), signed and verified, to the demo inbox:"]
    lines += [f"  {m['event']:<16} {escape(m['title'])}" for m in told]
    if result.get("status_page"):
        page = escape(result["status_page"])
        kept = "" if "workdir" in result else " (removed with the folder; --keep keeps it)"
        lines.append(f"status page written to {page}{kept}")
    if result.get("report"):
        report = result["report"]
        lines.append(
            f"post-incident report draft: {escape(report['md'])} and {escape(report['html'])}"
        )
    return lines


def _cleanup_line(result: dict[str, Any]) -> str:
    stopped = len(result["stopped_pids"])
    if "workdir" not in result:
        return f"cleaned up: {stopped} process(es) stopped, demo folder removed"
    return (
        f"cleaned up: {stopped} process(es) stopped; kept {escape(result['workdir'])}\n"
        f"  read the journal: backout --db {escape(result['database_url'])} "
        f"journal {result['run_id']}\n"
        f"  why it backed out: backout --db {escape(result['database_url'])} "
        f"explain {result['run_id']}"
    )
