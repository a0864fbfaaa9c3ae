"""Drills in aggregate, for reports and CI: percentiles per phase over repeated drills,
and JUnit XML with one test case per phase and per check of each drill."""

from __future__ import annotations

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
