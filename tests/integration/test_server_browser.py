"""The dashboard in a real browser: headless Chromium driven by Selenium (tests/browser.py:
Debian's chromium and chromedriver, nothing downloaded) against the API's app over real
HTTP on a loopback port, on PostgreSQL, while ``backout deploy`` runs as a process of its
own against the same store.

- sign in by typing a token in the form, and see the runs list with the running deploy;
- the deploy's run page, opened while a stage holds, follows the run without a reload
  (a marker set on the page's window survives): the trigger fires when the test raises
  the error signal, the backout's steps appear in the timeline and the status badge ends
  ``succeeded``, until the timeline holds the whole journal (each event once, in order,
  down to ``run_finished``); then the page shows the signal's chart against its limit,
  checked by its SVG elements and by the colours of its screenshot;
- a deploy waiting at a checkpoint is approved by an approver from its run page's form
  (signing in on the way to the page), the page says so, and the deploy goes on to promote.

Screenshots are taken at each scenario's key moments and checked to be real pictures; they
are kept under the test's tmp_path, and copied to the folder ``BACKOUT_TEST_ARTIFACTS``
names when that variable is set (``BACKOUT_TEST_ARTIFACTS=artifacts pytest ...``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from backout import commands
from tests.browser import browser, shoot, shoot_element, webdriver_session
from tests.integration.test_deploy import layout
from tests.integration.test_server import Api, serve
from tests.png import count_near
from tests.services import stop_process, wait_until

__all__ = ["browser", "serve", "webdriver_session"]  # fixtures

BACKOUT = (sys.executable, "-m", "backout")
DEADLINE_S = 60.0  # generous: a loaded machine; every wait ends on a condition
LIVE = "Live: new events appear as they are written."
# the signal chart's colours (src/backout/postmortem/charts.py)
SIGNAL_BLUE = "#1a73e8"
LIMIT_RED = "#d93025"


@pytest.fixture
def store_url(postgres_url: str) -> str:
    """PostgreSQL only: the deploy process rings the server's doorbell through NOTIFY."""
    return postgres_url


@pytest.fixture
def deploy(store_url: str, tmp_path: Path) -> Iterator[Callable[[Path], subprocess.Popen[bytes]]]:
    """``deploy(plan)``: ``backout deploy PLAN --release v2`` as a process; stopped after."""
    started: list[subprocess.Popen[bytes]] = []

    def start(plan: Path) -> subprocess.Popen[bytes]:
        with (tmp_path / "deploy.log").open("wb") as log:
            process = subprocess.Popen(
                [*BACKOUT, "--db", store_url, "deploy", str(plan), "--release", "v2"],
                cwd=plan.parent,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "BACKOUT_ACTOR": "deployer"},
            )
        started.append(process)
        return process

    yield start
    for process in started:
        stop_process(process)


def wait(driver: WebDriver, check: Callable[[WebDriver], Any], what: str) -> Any:
    return WebDriverWait(driver, DEADLINE_S, poll_frequency=0.1).until(
        check, f"gave up after {DEADLINE_S:g}s waiting for {what}"
    )


def sign_in(driver: WebDriver, api: Api, path: str, token: str) -> None:
    """Open PATH, land on the sign-in form, type the token and submit it."""
    driver.get(api.url + path)
    wait(driver, lambda d: d.find_elements(By.ID, "token"), "the sign-in form")
    assert "/login?next=" in driver.current_url
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    wait(driver, lambda d: "/login" not in d.current_url, "the sign-in to go through")


def timeline_kinds(driver: WebDriver, selector: str = "tr.event-row") -> list[str]:
    rows: list[WebElement] = driver.find_elements(By.CSS_SELECTOR, f"#timeline {selector}")
    return [row.find_elements(By.TAG_NAME, "td")[2].text for row in rows]


def run_of(api: Api) -> str:
    found = commands.runs(api.caller)
    assert len(found) == 1
    return str(found[0].run_id)


def test_a_deploys_run_page_follows_the_trigger_and_the_backout_live(
    serve: Any, browser: WebDriver, deploy: Any, tmp_path: Path
) -> None:
    api = serve()
    viewer = api.token("viewer")
    # one stage that holds long enough for the page to be open before the trigger fires
    plan = layout(tmp_path, hold="60s", stages=1)
    commands.snapshot(api.caller, plan, telemetry_window=0.3)
    process = deploy(plan)
    stages = tmp_path / "stages.txt"
    wait_until(lambda: stages.exists() and "1" in stages.read_text().split(), 30, "stage 1")
    run_id = run_of(api)

    # 1. sign in: the runs list shows the deploy, running
    sign_in(browser, api, "/", viewer)
    row = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "tr.run-row"), "the runs list")
    assert row.get_attribute("data-run") == run_id
    assert row.find_element(By.CSS_SELECTOR, ".badge").text == "running"
    assert "viewer-bot" in browser.page_source  # who is signed in
    shoot(browser, tmp_path, "live-1-runs")

    # 2. its run page, open before the trigger fires; then the signal goes bad
    row.find_element(By.LINK_TEXT, run_id).click()
    wait(browser, lambda d: d.find_element(By.ID, "live-note").text == LIVE, "the live stream")
    assert browser.find_element(By.ID, "run-status").text == "running"
    assert "trigger_fired" not in timeline_kinds(browser)
    browser.execute_script("window.__marker = 1;")
    shoot(browser, tmp_path, "live-2-holding")
    (tmp_path / "errors.txt").write_text("50\n")

    wait(
        browser,
        lambda d: (
            timeline_kinds(d)[-1:] == ["run_finished"]
            and d.find_element(By.ID, "live-note").text == "The run is over."
        ),
        "the page to show the run's last event",
    )
    assert browser.execute_script("return window.__marker;") == 1  # never reloaded
    assert browser.find_element(By.ID, "run-status").text == "succeeded"
    assert browser.find_element(By.ID, "run-status").get_attribute("class") == (
        "badge badge-succeeded"
    )
    assert browser.find_element(By.ID, "run-result").text == "backed_out"
    live = timeline_kinds(browser, "tr.event-new")  # the rows the page's script added
    assert live.index("trigger_fired") < live.index("backout_started") < live.index("step_started")
    assert "check_finished" in live  # the backout's verification
    # the timeline holds the whole journal now, each event once, in order
    journal = commands.journal(api.caller, run_id)
    assert timeline_kinds(browser) == [e.kind for e in journal]
    rows = browser.find_elements(By.CSS_SELECTOR, "#timeline tr.event-row")
    assert [int(row.get_attribute("data-seq") or 0) for row in rows] == [e.seq for e in journal]
    browser.execute_script("document.getElementById('journal').scrollIntoView();")
    shoot(browser, tmp_path, "live-3-backed-out")
    assert process.wait(DEADLINE_S) == 4  # backed out, and verified

    # the sections drawn from the whole run follow too, still without a reload: the summary,
    # the steps, and the evidence: the signal's chart against its limit
    wait(
        browser,
        lambda d: (
            "yes" in d.find_element(By.ID, "summary").text.split("verified", 1)[1][:8]
            and d.find_elements(By.CSS_SELECTOR, "#charts svg.chart-signal")
        ),
        "the summary and the charts to be drawn again",
    )
    assert browser.execute_script("return window.__marker;") == 1  # still never reloaded
    assert "not finished" not in browser.find_element(By.ID, "summary").text
    chart = browser.find_element(By.CSS_SELECTOR, "#charts svg.chart-signal")
    assert chart.find_elements(By.CSS_SELECTOR, "g.signal-line polyline")
    assert "limit:" in chart.find_element(By.CSS_SELECTOR, "g.limit-line text").text
    assert chart.find_elements(By.CSS_SELECTOR, "circle.signal-point.verdict-fail")
    assert chart.find_elements(By.CSS_SELECTOR, "circle.signal-point.verdict-pass")
    assert chart.find_elements(By.CSS_SELECTOR, "g.marker.marker-detected")
    steps = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#steps tr.run-step")]
    assert any("back to the last good release" in s for s in steps)
    assert "errors above 5" in browser.find_element(By.ID, "trigger").text
    browser.execute_script("arguments[0].scrollIntoView();", chart)
    width, height, pixels = shoot_element(chart, tmp_path, "live-4-signal-chart")
    assert width > 300
    assert height > 150
    assert count_near(pixels, SIGNAL_BLUE, 30) > 200  # the signal's line and readings
    assert count_near(pixels, LIMIT_RED, 30) > 100  # its limit, and the failing reading
    shoot(browser, tmp_path, "live-5-chart")


def test_a_checkpoint_is_approved_from_the_run_page(
    serve: Any, browser: WebDriver, deploy: Any, tmp_path: Path
) -> None:
    api = serve()
    approver = api.token("approver")
    plan = layout(tmp_path, hold="100ms", stages=1)
    plan.write_text(
        plan.read_text().replace("      hold: 100ms", "      hold: 100ms\n      approve: true")
    )
    commands.snapshot(api.caller, plan, telemetry_window=0.3)
    process = deploy(plan)

    def waiting() -> bool:
        found = commands.runs(api.caller)
        return bool(found) and any(
            e.kind == "checkpoint_started" and e.data.get("approve")
            for e in commands.journal(api.caller, found[0].run_id)
        )

    wait_until(waiting, 30, "the deploy to wait at its checkpoint")
    run_id = run_of(api)

    # signing in on the way to the run page lands on it
    sign_in(browser, api, f"/runs/{run_id}", approver)
    assert browser.current_url == f"{api.url}/runs/{run_id}"
    assert browser.find_element(By.ID, "run-status").text == "running"
    form = browser.find_element(By.ID, "approve-form")
    assert form.get_attribute("method") == "post"
    assert form.get_attribute("action") == f"{api.url}/runs/{run_id}/approve"
    hidden = form.find_elements(By.CSS_SELECTOR, "input[type=hidden]")
    assert any(h.get_attribute("value") for h in hidden)  # the CSRF token
    form.find_element(By.NAME, "comment").send_keys("canary looks fine")
    shoot(browser, tmp_path, "approve-1-form")
    browser.find_element(By.ID, "approve").click()

    flash = wait(browser, lambda d: d.find_element(By.ID, "flash"), "the approval's message")
    assert flash.text == "Approved stage 1: the deploy goes on."
    assert browser.current_url.startswith(f"{api.url}/runs/{run_id}")
    shoot(browser, tmp_path, "approve-2-approved")
    wait(
        browser,
        lambda d: d.find_element(By.ID, "run-status").text == "succeeded",
        "the deploy to promote",
    )
    assert browser.find_element(By.ID, "run-result").text == "promoted"
    assert "stage_approved" in timeline_kinds(browser)
    assert process.wait(DEADLINE_S) == 0
    record = api.audited("run.approve")[-1]
    assert record.actor == "approver-bot"
    assert record.details == {"stage": 1, "comment": "canary looks fine"}
    shoot(browser, tmp_path, "approve-3-promoted")

    # the runs list follows every run live: a run made meanwhile appears, with its outcome
    browser.get(f"{api.url}/")
    wait(browser, lambda d: d.find_element(By.ID, "live-note").text.startswith("Live"), "live")
    browser.execute_script("window.__marker = 1;")
    other = tmp_path / "other.yaml"
    other.write_text("plan: other\nsteps:\n  - name: back\n    run: ['true']\n")
    made = commands.run(api.caller, other)
    wait(
        browser,
        lambda d: (
            [
                row.find_element(By.CSS_SELECTOR, ".badge").text
                for row in d.find_elements(By.CSS_SELECTOR, f'tr.run-row[data-run="{made.run_id}"]')
            ]
            == ["succeeded"]
        ),
        "the new run in the list",
    )
    assert browser.execute_script("return window.__marker;") == 1  # never reloaded
    shoot(browser, tmp_path, "approve-4-runs-live")


def test_the_api_docs_render_offline(serve: Any, browser: WebDriver, tmp_path: Path) -> None:
    """The interactive API docs draw every operation from files of this server alone (the
    browser resolves no other host)."""
    api = serve()
    browser.get(f"{api.url}/api/v1/docs")
    wait(
        browser,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) > 20,
        "Swagger UI to draw the operations",
    )
    paths = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")]
    assert "/api/v1/runs" in paths
    assert "/api/v1/alerts/alertmanager" in paths
    shoot(browser, tmp_path, "api-docs")
