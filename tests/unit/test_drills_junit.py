"""The JUnit a drill writes: a phase that never ran, or was done by hand, is skipped —
never reported as passed — and a failed one carries its reason; percentiles per phase."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from backout.drills import junit_xml, percentiles
from backout.reports import CheckReport, RehearsalReport, RunReport, StepReport


def drill(
    trigger: dict[str, Any] | None, steady: dict[str, bool], total: float | None
) -> RehearsalReport:
    run = RunReport(
        run_id="r1",
        plan="shop",
        service="shop",
        status="failed",
        message="",
        actor="ci",
        plan_version="v",
        created_at=0.0,
        finished_at=1.0,
        duration_s=1.0,
        verified=False,
        trigger=trigger,
        steps=[StepReport(1, "break: ship bad", "pending", 0, None, "")],
        checks=[CheckReport(1, "good live", None, "", 0)],
    )
    phases = {"total_s": total, "detect_s": None, "break_s": None}
    return RehearsalReport(None, "shop", "v", False, "", phases, steady, [], None, 30.0, run)


def cases(xml: str) -> dict[str, str]:
    outcome = {}
    for case in ET.fromstring(xml).iter("testcase"):
        kinds = [child.tag for child in case]
        outcome[case.get("name", "")] = kinds[0] if kinds else "pass"
    return outcome


def test_a_drill_that_never_started_skips_what_never_ran() -> None:
    xml = junit_xml([drill(None, {"before": False}, None)])
    assert cases(xml) == {
        "steady state before": "failure",
        "detect": "skipped",
        "check good live": "skipped",
        "steady state after": "skipped",
    }
    suite = ET.fromstring(xml).find("testsuite")
    assert suite is not None
    assert (suite.get("failures"), suite.get("skipped")) == ("1", "3")


def test_detection_by_hand_is_skipped_and_a_miss_fails() -> None:
    manual = {"trigger": "manual", "trigger_kind": "manual", "summary": "by hand"}
    missed = {"trigger": "undetected", "trigger_kind": "undetected", "summary": "no trigger"}
    assert cases(junit_xml([drill(manual, {"before": True}, 1.0)]))["detect"] == "skipped"
    assert cases(junit_xml([drill(missed, {"before": True}, 1.0)]))["detect"] == "failure"
    assert cases(junit_xml([drill(missed, {"before": True}, 31.0)]))["within rto"] == "failure"


def test_percentiles_per_phase() -> None:
    reports = [drill(None, {}, float(t)) for t in (1, 2, 3, 4, 100)]
    assert percentiles(reports)["total_s"] == {"p50": 3.0, "p95": 80.8}
    assert percentiles(reports)["detect_s"] == {"p50": None, "p95": None}
