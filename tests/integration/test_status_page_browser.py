"""The built page in a real browser: headless Chromium (Debian's ``chromium``) opens
index.html from file:// — nothing to fetch, so nothing else is needed — and its screenshot
shows each component in its state's colour (read pixel by pixel), while the DOM it built
names the states. Chromium runs in its own process group, with its own profile, and the
whole group is killed when it is done (or hangs)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

from backout import commands
from tests.callers import caller
from tests.integration.statuspage_plans import settings, write_plan
from tests.png import count_near, read_png
from tests.services import find_binary

CHROMIUM_TIMEOUT_S = 60.0
# the page's colours (src/backout/statuspage/templates/index.html.j2)
RED = "#d93025"  # major_outage, and the banner of a critical page
GREEN = "#1e8e3e"  # operational, and the banner of a page with nothing wrong
SHOP = "status_page:\n  component: Checkout\n"


@pytest.fixture
def chromium() -> str:
    return find_binary("chromium", "/usr/lib/chromium/chromium")


def browse(binary: str, page: Path, workdir: Path, *how: str) -> str:
    """Run Chromium once on ``page``; its stdout. Every process it started is killed by
    its group when it returns, so none outlives the test."""
    argv = [
        binary,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
        "--hide-scrollbars",
        "--disable-extensions",
        f"--user-data-dir={workdir / 'chromium-profile'}",
        *how,
        page.resolve().as_uri(),
    ]
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, killed whole below
        env={**os.environ, "HOME": str(workdir)},
    )
    try:
        out, err = process.communicate(timeout=CHROMIUM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not finish within {CHROMIUM_TIMEOUT_S:g}s")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


def screenshot(binary: str, page: Path, workdir: Path) -> list[tuple[int, int, int]]:
    shot = workdir / "shot.png"
    shot.unlink(missing_ok=True)
    browse(binary, page, workdir, f"--screenshot={shot}", "--window-size=1000,800")
    width, height, pixels = read_png(shot)
    assert (width, height) == (1000, 800)
    return pixels


def test_the_page_shows_each_state_in_its_colour(
    chromium: str, store_url: str, tmp_path: Path
) -> None:
    who = caller(settings(store_url))
    commands.run(who, write_plan(tmp_path, section=SHOP))
    commands.run(who, write_plan(tmp_path, name="search"))
    commands.incident_update(who, "shop", "identified", "Checkout is down.", "major_outage")
    site = tmp_path / "site"
    commands.status_page_build(who, site, "Acme status")

    dom = browse(chromium, site / "index.html", tmp_path, "--dump-dom")
    assert 'class="banner banner-critical"' in dom
    assert dom.count('data-status="major_outage"') == 1
    assert dom.count('data-status="operational"') == 1
    assert "Checkout is down." in dom

    down = screenshot(chromium, site / "index.html", tmp_path)
    # the banner (about 830x65) and Checkout's badge are red; search's badge is green
    assert count_near(down, RED) > 30_000
    assert 2_000 < count_near(down, GREEN) < 10_000

    commands.incident_update(who, "shop", "resolved", "Checkout is back.")
    commands.status_page_build(who, site, "Acme status")
    fine = screenshot(chromium, site / "index.html", tmp_path)
    assert count_near(fine, RED) == 0
    assert count_near(fine, GREEN) > 30_000  # the banner, and both badges
