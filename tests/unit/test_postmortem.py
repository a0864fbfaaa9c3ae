"""The report's pure parts: Markdown escaping, durations, reading a trigger verdict's
signal, the SVG charts (well-formed, escaped, redacted), the seal read back from a file."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from backout.errors import UsageError
from backout.postmortem import read_seal
from backout.postmortem.charts import gantt_chart, signal_chart
from backout.postmortem.gather import reading
from backout.postmortem.model import (
    CheckLine,
    Moments,
    Point,
    Postmortem,
    Seal,
    Signal,
    StepLine,
)
from backout.postmortem.render import md, to_html, to_markdown
from backout.postmortem.seal import comment
from backout.postmortem.timeline import seconds
from backout.redact import Redactor

SVG = "{http://www.w3.org/2000/svg}"


def postmortem(**changes: Any) -> Postmortem:
    seal = Seal("abc123", "f" * 64, 3, 7, "e" * 64, 1000.0)
    fields: dict[str, Any] = {
        "run_id": "abc123",
        "plan": "shop",
        "service": "shop",
        "environment": "",
        "mode": "deploy",
        "status": "succeeded",
        "result": "backed_out",
        "message": "",
        "owner": "team",
        "change_id": None,
        "change_title": None,
        "release": "v2",
        "baseline_release": "v1",
        "plan_version": "1",
        "authors": ["alice"],
        "in_progress": False,
        "outcome": "backed out",
        "moments": Moments(100.0, 101.0, 102.0, 103.0, 5, 104.0, 6, 104.5, 106.0, 106.0, 9),
        "trigger": None,
        "signal": Signal(
            "errors <b>up</b>",
            "threshold",
            "errors",
            "value",
            "above 5",
            [Point(5, 103.0, 2.0, 5.0, "pass"), Point(6, 104.0, 50.0, 5.0, "fail")],
            {"value": 0.0, "events": None, "trials": None, "at": 90.0},
        ),
        "steps": [
            StepLine(1, "ship <script>", "forward", "succeeded", 1, 101.0, 102.0, 1.0, "", [2, 3]),
            StepLine(2, "never", "backout", "pending", 0, None, None, None, "", []),
        ],
        "checks": [CheckLine(1, "live", True, "ok", 2, 105.0, 105.9, 5.0, [7, 8])],
        "rto_s": 60.0,
        "elapsed_s": 1.5,
        "rto_met": True,
        "resumes": [],
        "timeline": [],
        "lessons": [],
        "seal": seal,
    }
    return Postmortem(**{**fields, **changes})


def test_markdown_text_is_shown_literally_on_one_line() -> None:
    assert md("a_b *c* `d` [e](f) <g> x|y\nz") == "a\\_b \\*c\\* \\`d\\` \\[e\\](f) \\<g> x\\|y z"


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0.4531, "0.453s"), (12.34, "12.3s"), (60, "1m 00s"), (125.4, "2m 05s"), (None, "?")],
)
def test_seconds(value: float | None, shown: str) -> None:
    assert seconds(value) == shown


def test_reading_a_verdict_by_detector() -> None:
    threshold = {"statistic": 7.0, "threshold": 5.0, "evidence": {"value": 7.0, "above": 5}}
    assert reading(threshold) == (7.0, 5.0, "value", "above 5")
    rate = {"statistic": 6.9, "evidence": {"observed_rate": 0.29, "p_null": 0.083}}
    assert reading(rate) == (0.29, 0.083, "observed rate", "rate tested 0.083")
    other = {"statistic": 0.01, "threshold": 0.05, "evidence": {"p": 0.01}}
    assert reading(other) == (0.01, 0.05, "statistic", "threshold 0.05")
    assert reading({"evidence": {"status": "no_data"}}) is None


def test_charts_are_well_formed_escaped_and_redacted() -> None:
    redact = Redactor(["script"])
    pm = postmortem()
    signal = signal_chart(pm, redact)
    steps = gantt_chart(pm, redact, now=200.0)
    assert signal is not None
    assert steps is not None
    for svg in (signal, steps):
        root = ET.fromstring(svg)  # well-formed XML: names were escaped
        assert root.tag == f"{SVG}svg"
    root = ET.fromstring(signal)
    assert root.get("class") == "chart chart-signal"
    line = root.find(f".//{SVG}g[@class='signal-line']")
    assert line is not None
    assert len(line.findall(f"{SVG}circle")) == 2
    markers = {g.get("class") for g in root.iter(f"{SVG}g") if "marker" in (g.get("class") or "")}
    assert markers == {"marker marker-deploy", "marker marker-detected", "marker marker-restored"}
    assert "<b>" not in signal  # the trigger's name is text, not markup
    assert "script" not in steps
    assert "***" in steps
    bars = ET.fromstring(steps).findall(f".//{SVG}rect")
    assert len(bars) == 2  # the step that started and the check: not the pending step


def test_no_signal_no_chart() -> None:
    assert signal_chart(postmortem(signal=None), Redactor()) is None
    empty = postmortem(steps=[], checks=[])
    assert gantt_chart(empty, Redactor(), now=200.0) is None


def test_seal_read_back_from_each_format(tmp_path: Path) -> None:
    pm = postmortem()
    files = {
        "r.md": to_markdown(pm, Redactor()),
        "r.html": to_html(pm, Redactor(), now=200.0),
        "r.json": json.dumps({"format": "backout-report/1", "seal": pm.seal.to_json()}),
    }
    for name, body in files.items():
        (tmp_path / name).write_text(body)
        assert read_seal(tmp_path / name) == pm.seal


@pytest.mark.parametrize(
    "body",
    [
        "# just notes\n",
        '<!-- backout-report-seal {"format": "other/1"} -->',
        '<!-- backout-report-seal {"format": "backout-report/1"} -->',
        '{"seal": {"format": "nope"}}',
    ],
)
def test_a_file_that_is_not_a_report_is_a_usage_error(tmp_path: Path, body: str) -> None:
    path = tmp_path / "x.md"
    path.write_text(body)
    with pytest.raises(UsageError, match=r"not a backout report|seal is incomplete"):
        read_seal(path)


def test_the_seal_comment_is_one_html_comment() -> None:
    text = comment(postmortem().seal)
    assert text.startswith("<!-- backout-report-seal {")
    assert text.endswith("} -->")
    assert text.count("-->") == 1
