"""The report in a real browser, and the demo's own report.

Headless Chromium (Debian's ``chromium``) opens the HTML report from file:// — it is one
self-contained file, nothing to fetch — and the DOM it built holds both SVG charts with
their parts (the signal's line and limit, the moments marked, a bar per step); the
screenshot is kept under the test's tmp_path. Then `backout demo --keep` writes its
report next to its folder, and that report is checked against the demo's store."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from backout import commands
from backout.commands.report import report, report_check
from backout.settings import Settings
from tests.callers import caller
from tests.e2e.test_demo import DEMO, demo_env
from tests.integration.test_deploy import fail_when_stage_starts, layout
from tests.integration.test_deploy import settings as deploy_settings
from tests.integration.test_report import assert_golden
from tests.integration.test_status_page_browser import browse, chromium  # noqa: F401
from tests.png import read_png


def test_the_html_report_renders_its_charts(chromium: str, store_url: str, tmp_path: Path) -> None:  # noqa: F811
    plan = layout(tmp_path, hold=["60s", "600ms"], stages=2)
    who = caller(deploy_settings(store_url))
    commands.snapshot(who, plan, telemetry_window=0.3)
    fail_when_stage_starts(tmp_path, 1)
    run = commands.deploy(who, plan, release="v2")
    assert run.result == "backed_out"
    page = tmp_path / "report.html"
    report(who, run.run_id, "html", page)
    html = page.read_text()
    assert "<script" not in html
    assert "http://" not in html.split("<body>")[0]  # nothing fetched: CSS is inline

    dom = browse(chromium, page, tmp_path, "--dump-dom")
    assert dom.count("<svg") == 2
    assert 'class="chart chart-signal"' in dom
    assert 'class="chart chart-steps"' in dom
    assert 'class="signal-line"' in dom
    assert 'class="limit-line"' in dom
    for moment in ("deploy", "detected", "restored"):
        assert f'class="marker marker-{moment}"' in dom
    events = commands.journal(who, run.run_id)
    started = {e.step for e in events if e.kind == "step_started"}
    assert len(started) == 3  # stage 1's step, its undo, the backout's step
    assert dom.count('class="step-row"') == len(started) + len(run.checks)
    assert dom.count('class="bar bar-succeeded') == len(started) + len(run.checks)
    assert dom.count("data-seq=") == len(events)

    shot = tmp_path / "report.png"
    browse(chromium, page, tmp_path, f"--screenshot={shot}", "--window-size=1000,1600")
    width, height, pixels = read_png(shot)
    assert (width, height) == (1000, 1600)
    assert len(set(pixels)) > 10  # drawn, not a blank page


def test_the_demo_writes_its_report(tmp_path: Path) -> None:
    done = subprocess.run(
        [*DEMO, "--json", "--keep"],
        capture_output=True,
        text=True,
        env=demo_env(tmp_path),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    written = result["report"]
    assert Path(written["md"]) == Path(result["workdir"]) / "report.md"
    markdown = Path(written["md"]).read_text()
    assert "![signal](report-signal.svg)" in markdown
    assert (Path(result["workdir"]) / "report-signal.svg").read_text().startswith("<svg")
    assert "chart-signal" in Path(written["html"]).read_text()

    who = caller(Settings(database_url=result["database_url"]))
    assert_golden(markdown, commands.journal(who, result["run_id"]))
    assert "A deploy of release v2 of demo-shop was backed out after trigger" in markdown
    for path in written.values():
        assert report_check(who, path).ok
    human = subprocess.run(
        [*DEMO, "--keep"], capture_output=True, text=True, env=demo_env(tmp_path), timeout=120
    )
    assert human.returncode == 0, human.stderr
    assert "post-incident report draft: " in human.stderr
    assert "report.md and " in human.stderr
