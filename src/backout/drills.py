"""Drills in aggregate, for reports and CI: percentiles per phase over repeated drills,
JUnit XML with one test case per phase and per check of each drill, and an evidence
report in Markdown or HTML."""

from __future__ import annotations

import html
import statistics
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from backout.reports import RehearsalReport

PHASES = ("break_s", "detect_s", "backout_s", "verify_s", "total_s")


def percentiles(reports: Sequence[RehearsalReport]) -> dict[str, dict[str, float | None]]:
    """p50 and p95 of each phase over the drills that measured it (None: none did)."""
    out: dict[str, dict[str, float | None]] = {}
    for phase in PHASES:
        values = sorted(float(v) for r in reports if (v := r.phases.get(phase)) is not None)
        if not values:
            out[phase] = {"p50": None, "p95": None}
        elif len(values) == 1:
            out[phase] = {"p50": values[0], "p95": values[0]}
        else:
            cuts = statistics.quantiles(values, n=100, method="inclusive")
            out[phase] = {"p50": round(cuts[49], 3), "p95": round(cuts[94], 3)}
    return out


def junit_xml(reports: Sequence[RehearsalReport]) -> str:
    """One test suite per drill: its steady states, detection, backout steps, checks and
    the rto as test cases (Jenkins, GitLab CI, GitHub Actions and Azure DevOps read it)."""
    root = ET.Element("testsuites")
    for number, report in enumerate(reports, start=1):
        cases = _cases(report)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"backout rehearse {report.plan} #{number}",
            tests=str(len(cases)),
            failures=str(sum(1 for _, outcome, _, _ in cases if outcome == "fail")),
            skipped=str(sum(1 for _, outcome, _, _ in cases if outcome == "skip")),
            errors="0",
            time=str(report.phases.get("total_s") or 0.0),
        )
        for name, outcome, message, seconds in cases:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"backout.rehearse.{report.plan}",
                name=name,
                time=str(seconds or 0.0),
            )
            if outcome == "fail":
                ET.SubElement(case, "failure", message=message, type="rehearsal").text = message
            elif outcome == "skip":
                ET.SubElement(case, "skipped", message=message)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def _cases(report: RehearsalReport) -> list[tuple[str, str, str, float | None]]:
    """(name, outcome: pass|fail|skip, message, seconds) for each phase and check."""
    phases = report.phases
    steady = report.steady
    cases: list[tuple[str, str, str, float | None]] = [
        _case("steady state before", steady.get("before"), "not in steady state")
    ]
    trigger = report.run.trigger or {}
    kind = trigger.get("trigger_kind")
    if kind == "undetected":
        cases.append(("detect", "fail", str(trigger.get("summary")), phases.get("detect_s")))
    elif kind in (None, "manual", "step"):
        why = "detection by hand (--trigger manual)" if kind == "manual" else "never ran"
        cases.append(("detect", "skip", why, None))
    else:
        cases.append(("detect", "pass", str(trigger.get("summary")), phases.get("detect_s")))
    for step in report.run.steps:
        if step.status in ("succeeded", "failed"):
            outcome = "fail" if step.status == "failed" else "pass"
            cases.append((f"step {step.name}", outcome, step.summary, step.duration_s))
    for check in report.run.checks:
        verdict = None if check.passed is None else check.passed
        cases.append(_case(f"check {check.name}", verdict, check.reason or "not run"))
    cases.append(_case("steady state after", steady.get("after"), "not back in steady state"))
    if report.fits_rto is not None:
        total = phases.get("total_s")
        failure = f"took {total}s, more than the rto of {report.rto_s}s"
        cases.append(("within rto", "pass" if report.fits_rto else "fail", failure, total))
    return cases


def _case(name: str, passed: bool | None, failure: str) -> tuple[str, str, str, float | None]:
    if passed is None:
        return (name, "skip", "never ran", None)
    return (name, "pass" if passed else "fail", "" if passed else failure, None)


def evidence_markdown(reports: Sequence[RehearsalReport]) -> str:
    """The drills as a Markdown evidence report, for a change record or a review."""
    lines = [f"# Rehearsal evidence: {reports[0].plan}" if reports else "# Rehearsal evidence", ""]
    if len(reports) > 1:
        lines += ["| phase | p50 | p95 |", "| --- | --- | --- |"]
        for phase, values in percentiles(reports).items():
            lines.append(f"| {phase[:-2]} | {_s(values['p50'])} | {_s(values['p95'])} |")
        lines.append("")
    for number, report in enumerate(reports, start=1):
        verdict = "passed" if report.passed else "FAILED"
        if report.passed and report.fits_rto is False:
            verdict = "passed, but over the rto"
        lines += [
            f"## Drill {number}: {verdict}",
            "",
            f"- run `{report.run.run_id}` of plan `{report.plan}` version "
            f"`{report.plan_version}`, by {report.run.actor}",
            f"- {report.message}",
            f"- journal SHA-256 `{report.journal_hash or 'not recorded'}`",
            f"- rto {_s(report.rto_s)}; total {_s(report.phases.get('total_s'))}",
            "",
            "| phase or check | outcome | message | seconds |",
            "| --- | --- | --- | --- |",
        ]
        for name, outcome, message, seconds in _cases(report):
            lines.append(f"| {_cell(name)} | {outcome} | {_cell(message)} | {_s(seconds)} |")
        for fault in report.faults:
            acted = "acted" if fault.get("acted") else "never acted"
            lines.append(f"- fault: {fault.get('described', fault.get('kind'))} ({acted})")
        lines.append("")
    return "\n".join(lines)


def evidence_html(reports: Sequence[RehearsalReport]) -> str:
    """The Markdown report's content as one self-contained HTML page (values escaped)."""
    body: list[str] = []
    table: list[str] = []
    for line in evidence_markdown(reports).splitlines():
        if line.startswith("|"):
            if set(line) <= {"|", " ", "-"}:
                continue
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            tag = "th" if not table else "td"
            table.append(
                "<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>"
            )
            continue
        if table:
            body.append("<table>" + "".join(table) + "</table>")
            table = []
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("- "):
            body.append(f"<p>{html.escape(line[2:])}</p>")
    if table:
        body.append("<table>" + "".join(table) + "</table>")
    style = "body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{padding:.2em .6em}"
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>Rehearsal evidence</title>"
        f"<style>{style}</style></head><body>" + "".join(body) + "</body></html>\n"
    )


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.3f}s"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
