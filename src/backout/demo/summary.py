"""The demo's closing summary for people (``--json`` prints the result dict instead)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from backout.render import seconds, styled


def print_summary(console: Console, result: dict[str, Any]) -> None:
    console.print()
    console.print(steps_table(result))
    for line in summary_lines(result):
        console.print(line, soft_wrap=True)


def steps_table(result: dict[str, Any]) -> Table:
    table = Table(title=f"backout run {result['run_id']}", title_justify="left")
    for column in ("step", "outcome", "duration"):
        table.add_column(column)
    for step in result["steps"]:
        table.add_row(escape(step["name"]), styled(step["outcome"]), seconds(step["duration_s"]))
    for check in result["checks"]:
        outcome = "succeeded" if check["passed"] else "failed"
        table.add_row(f"verify: {escape(check['name'])}", styled(outcome), "")
    return table


def summary_lines(result: dict[str, Any]) -> list[str]:
    traffic = result["traffic"]
    errors = sum(n for code, n in traffic["by_code"].items() if code.startswith("5"))
    lines = [
        f"detected after [bold]{result['detected_after_s']:.2f}s[/]: "
        f"{result['error_rate_at_trigger']:.1%} of the last {result['requests_in_window']} "
        f"requests failed (threshold {result['threshold']:.0%} over {result['window_s']:g}s, "
        f"at least {result['min_requests']} requests)",
        _restored_line(result),
        f"users saw {errors} errors and {traffic['connection_errors']} failed connections "
        f"in {traffic['requests']} requests",
    ]
    if result.get("error_rate_after") is not None:
        lines.append(f"error rate after the backout: {result['error_rate_after']:.1%}")
    lines.append(_cleanup_line(result))
    return lines


def _restored_line(result: dict[str, Any]) -> str:
    if result["restored_after_s"] is None:
        return f"{styled(result['outcome'])}: {escape(result['message'])}"
    return (
        f"{styled(result['outcome'])}: restored and verified [bold]"
        f"{result['restored_after_s']:.2f}s[/] after the fault began "
        f"(demo took {result['duration_s']:.1f}s)"
    )


def _cleanup_line(result: dict[str, Any]) -> str:
    stopped = len(result["stopped_pids"])
    if "workdir" not in result:
        return f"cleaned up: {stopped} process(es) stopped, demo folder removed"
    return (
        f"cleaned up: {stopped} process(es) stopped; kept {escape(result['workdir'])}\n"
        f"  read the journal: backout --db {escape(result['database_url'])} "
        f"journal {result['run_id']}"
    )
