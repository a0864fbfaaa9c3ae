"""A real browser for tests: Debian's headless Chromium driven by Selenium through Debian's
chromedriver, both found on PATH. Nothing is downloaded: the driver's path is given to
Selenium, so Selenium Manager (which would fetch a driver or a browser) is never run — and
it is made to fail loudly if it ever were. Chromium gets its own profile and HOME under the
session's temporary folder, the switches that phone home turned off, and a host resolver
that resolves no name but the loopback's: it reaches nothing but the test servers (checked
once with strace: no DNS lookup, no connection past 127.0.0.1 but the network service's
IPv6 reachability probe, a UDP connect that sends nothing).

Fixtures (import them into a test module to use them)::

    webdriver_session  one WebDriver for the whole session; chromedriver and every Chromium
                       process run in one process group of their own, killed whole at the
                       end (after a clean quit), and so are Chromium's crash handlers (which
                       leave the group), so none outlives the session
    browser            that WebDriver for one test, its cookies cleared, on a blank page

``shoot(driver, tmp_path, name)`` saves a screenshot of the viewport as a PNG under the
test's tmp_path (and, when ``BACKOUT_TEST_ARTIFACTS`` names a folder, a copy there), checks
it is a real picture of the viewport's size, and returns its path;
``shoot_element(element, tmp_path, name)`` does the same for one element and returns its
pixels (``tests/png.py``'s ``read_png``), for a test to check what is drawn.

A missing chromium or chromedriver skips the test with the apt-get line to run, or fails it
under ``BACKOUT_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.selenium_manager import SeleniumManager
from selenium.webdriver.remote.webelement import WebElement

from tests.conftest import missing_service
from tests.png import SIGNATURE, read_png
from tests.services import find_binary

ARTIFACTS_ENV = "BACKOUT_TEST_ARTIFACTS"
WINDOW = (1200, 1400)
PAGE_LOAD_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 3.0  # after a clean quit, for the last Chromium processes to go by themselves
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-client-side-phishing-detection",
    "--disable-domain-reliability",
    "--no-pings",
    "--disable-features=AutofillServerCommunication,OptimizationHints,MediaRouter,Translate",
    # no name resolves but the test servers': the browser reaches nothing past loopback
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--hide-scrollbars",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
)


def _no_selenium_manager(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("Selenium Manager was asked for a driver: it would download one")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="session")
def webdriver_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    chromium = find_binary("chromium", "/usr/lib/chromium/chromium")
    driver_path = shutil.which("chromedriver")
    if driver_path is None:  # Debian's package for it is not called chromedriver
        missing_service("chromedriver not installed: apt-get install chromium-driver")
    assert driver_path is not None
    home = tmp_path_factory.mktemp("chromium")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*FLAGS, f"--user-data-dir={home / 'profile'}"):
        options.add_argument(flag)
    env = {key: value for key, value in os.environ.items() if not key.startswith("SE_")}
    service = Service(
        executable_path=driver_path,
        log_output=str(home / "chromedriver.log"),
        env={**env, "HOME": str(home)},
        popen_kw={"start_new_session": True},  # one process group: driver and browser
    )
    real = SeleniumManager.binary_paths
    SeleniumManager.binary_paths = _no_selenium_manager  # type: ignore[method-assign]
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except BaseException:
        _stop(service.process.pid if service.process is not None else None, home)
        raise
    finally:
        SeleniumManager.binary_paths = real  # type: ignore[method-assign]
    group = service.process.pid if service.process is not None else None
    try:
        driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
        yield driver
    finally:
        with contextlib.suppress(Exception):
            driver.quit()
        _stop(group, home)


def _stop(group: int | None, home: Path) -> None:
    """After a quit: give chromedriver's process group (the driver and every Chromium
    process) a moment to go, then kill what is left of it; then the same for Chromium's
    crash handlers, which leave the group (a session of their own) and are known by the
    profile folder in their command line."""
    deadline = time.monotonic() + STOP_TIMEOUT_S
    if group is not None:
        while _group_alive(group) and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    while _handlers(home) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in _handlers(home):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _handlers(home: Path) -> list[int]:
    """Live processes whose command line names ``home`` (none of them ours but Chromium's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            line = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"{home}{os.sep}".encode() in line and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.fixture
def browser(webdriver_session: WebDriver) -> Iterator[WebDriver]:
    """The session's browser, with no cookie from an earlier test (a cookie ignores the
    port, and every test's server is on 127.0.0.1), on a blank page; back on a blank page
    after the test, so no open page keeps a connection to the test's server."""
    webdriver_session.execute_cdp_cmd("Network.clearBrowserCookies", {})
    webdriver_session.get("about:blank")
    yield webdriver_session
    webdriver_session.get("about:blank")


def _keep(shot: Path) -> None:
    folder = os.environ.get(ARTIFACTS_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, Path(folder) / shot.name)


def png_size_and_variety(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct bytes of the filtered image data) of an 8-bit RGB(A) PNG,
    with its data checked whole — fast where decoding every pixel (``read_png``) of a
    whole window takes seconds. One colour all over filters to a handful of byte values; a
    drawn page to far more."""
    data = path.read_bytes()
    assert data.startswith(SIGNATURE), f"{path} is not a PNG"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert data[12:16] == b"IHDR"
    assert (depth, colour) in ((8, 2), (8, 6)), f"{path}: depth {depth}, colour {colour}"
    compressed, at = b"", len(SIGNATURE)
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        if data[at + 4 : at + 8] == b"IDAT":
            compressed += data[at + 8 : at + 8 + length]
        at += 12 + length
    raw = zlib.decompress(compressed)
    assert len(raw) == height * (1 + width * (3 if colour == 2 else 4))
    return width, height, len(set(raw))


def shoot(driver: WebDriver, tmp_path: Path, name: str) -> Path:
    """A screenshot of the page's viewport: ``tmp_path/NAME.png``, copied to
    $BACKOUT_TEST_ARTIFACTS when set; it must be the viewport's size and more than a blank
    page."""
    shot = tmp_path / f"{name}.png"
    assert driver.save_screenshot(str(shot)), f"no screenshot {name}"
    width, height, variety = png_size_and_variety(shot)
    viewport = driver.execute_script("return [window.innerWidth, window.innerHeight];")
    assert [width, height] == viewport  # the page's whole viewport, at one pixel a pixel
    assert variety > 32, f"screenshot {name} is blank"
    _keep(shot)
    return shot


def shoot_element(
    element: WebElement, tmp_path: Path, name: str
) -> tuple[int, int, list[tuple[int, int, int]]]:
    """A screenshot of one element (kept as ``shoot`` keeps it), decoded: (width, height,
    pixels) for a test to look at its colours."""
    shot = tmp_path / f"{name}.png"
    assert element.screenshot(str(shot)), f"no screenshot {name}"
    _keep(shot)
    return read_png(shot)
