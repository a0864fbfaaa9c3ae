"""Blue-green and canary deploys against a real nginx and a real Prometheus.

Two real backends serve the releases: blue (the good one) and green (the new one, which
can be switched to answer 40% of its requests with a 500). Each exposes
``http_requests_total{code=...}`` on /metrics, and a real Prometheus (1 s scrape interval)
scrapes both. A background thread sends ~40 requests/s through a real nginx, whose
upstream weights the plan's ``nginx`` steps change stage by stage. The plan's trigger asks
Prometheus for green's 5xx ratio.

Where the traffic went is read from nginx's own access log (``$upstream_addr`` with
``$msec``), and lined up with the journal's timestamps: all to blue before the deploy, the
stage's split during each checkpoint, and all to blue again after a backout (all to green
after a promotion).

Prometheus and the two backends are shared by the module: Prometheus needs ~5 s to start
scraping a new target, which every test would otherwise pay. Each test waits until green
is idle again in Prometheus (no traffic, so no ratio) before it deploys. The main
scenarios run on SQLite; the blue-green backout also on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from backout import commands
from backout.actions import Context
from backout.actions.nginx import NginxAction, NginxOptions
from backout.errors import UsageError
from backout.kernel.events import Event
from backout.reports import RunReport
from backout.settings import Settings
from tests.callers import caller
from tests.services import (
    Backend,
    Nginx,
    Prometheus,
    _children,
    start_backend,
    start_prometheus,
    stop_process,
    wait_until,
)

pytestmark = pytest.mark.slow

RATE = 40.0  # requests per second through nginx
FAILING = 0.4  # share of green's requests that fail when it is bad
TRIGGER = "green 5xx ratio above 10% for 2s"
SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
LOG_LINE = re.compile(r"^(?P<at>\d+\.\d+) (?P<status>\d{3}) .* upstream=(?P<upstream>\S+)$")


# --- the two releases -----------------------------------------------------------------------
@dataclass
class Release:
    """A backend answering ``/`` with its name and exposing its request counter."""

    name: str
    failing: float = 0.0  # share of requests answered with 500, deterministic
    codes: Counter[int] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    backend: Backend | None = None

    @property
    def address(self) -> str:
        assert self.backend is not None
        return self.backend.address

    def handle(self, path: str) -> tuple[int, str, str]:
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4", self.metrics()
        with self.lock:
            served = sum(self.codes.values())
            # every 10 requests, the first FAILING*10 fail: a steady 40%, no lucky streaks
            code = 500 if served % 10 < round(self.failing * 10) else 200
            self.codes[code] += 1
        return code, "text/plain", f"{self.name}\n"

    def metrics(self) -> str:
        with self.lock:
            codes = dict(self.codes)
        codes.setdefault(200, 0)  # like client libraries, the 500 series appears at the first 500
        series = "".join(
            f'http_requests_total{{code="{code}"}} {count}\n'
            for code, count in sorted(codes.items())
        )
        return (
            "# HELP http_requests_total Requests served, by status code.\n"
            "# TYPE http_requests_total counter\n" + series
        )


@pytest.fixture(scope="module")
def releases() -> Iterator[dict[str, Release]]:
    started = {name: Release(name) for name in ("blue", "green")}
    for release in started.values():
        release.backend = start_backend(release.handle)
    yield started
    for release in started.values():
        assert release.backend is not None
        release.backend.server.shutdown()
        release.backend.server.server_close()


@pytest.fixture(scope="module")
def prom(
    releases: dict[str, Release], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    addresses = [release.address for release in releases.values()]
    server = start_prometheus(tmp_path_factory.mktemp("prometheus"), addresses)
    try:
        server.wait_for("up == 1", lambda result: len(result) == 2, timeout=30)
        yield server
    finally:
        stop_process(server.process)


def error_ratio(instance: str, window: str = "5s") -> str:
    """PromQL for one instance's 5xx share; empty or NaN (no data) when it has no traffic."""
    errors = f'sum(rate(http_requests_total{{code=~"5..",instance="{instance}"}}[{window}]))'
    total = f'sum(rate(http_requests_total{{instance="{instance}"}}[{window}]))'
    return f"({errors} or vector(0)) / {total}"


def idle(result: list[dict[str, Any]]) -> bool:
    return not result or result[0]["value"][1] == "NaN"


# --- traffic and nginx's log ----------------------------------------------------------------
class Traffic:
    """~RATE requests/s through nginx, each on a fresh connection (a reload is seen at once)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.thread = threading.Thread(target=self._send, daemon=True)

    def _send(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(timeout=2, limits=limits) as client:
            due = time.monotonic()
            deadline = due + 120  # bounded, whatever happens to the test
            while not self.stop.is_set() and due < deadline:
                try:
                    client.get(self.url)
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                due += 1 / RATE
                time.sleep(max(0.0, due - time.monotonic()))

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


@dataclass(frozen=True)
class Logged:
    at: float
    status: int
    upstream: str


def logged(nginx: Nginx, since: int = 0) -> list[Logged]:
    with nginx.access_log.open("rb") as log:
        log.seek(since)
        lines = log.read().decode().splitlines()
    return [
        Logged(float(m["at"]), int(m["status"]), m["upstream"])
        for m in map(LOG_LINE.match, lines)
        if m
    ]


def names(requests: list[Logged], releases: dict[str, Release]) -> Counter[str]:
    by_address = {release.address: name for name, release in releases.items()}
    return Counter(by_address.get(r.upstream, r.upstream) for r in requests)


def between(requests: list[Logged], start: float, end: float) -> list[Logged]:
    return [r for r in requests if start <= r.at < end]


def settle(nginx: Nginx) -> None:
    """Wait until no worker of an older generation is still finishing requests."""

    def titles() -> list[str]:
        found = []
        for pid in _children(nginx.process.pid):
            try:
                found.append(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"))
            except OSError:
                continue
        return found

    wait_until(
        lambda: not any("shutting down" in title for title in titles()),
        10,
        "nginx's old workers to exit",
    )


def send(nginx: Nginx, count: int) -> list[Logged]:
    """``count`` requests after everything settled; what nginx logged for them."""
    settle(nginx)
    start = nginx.log_size()
    with httpx.Client(timeout=5, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        for _ in range(count):
            client.get(nginx.url)
    wait_until(lambda: len(logged(nginx, start)) >= count, 5, "nginx to log every request")
    return logged(nginx, start)


# --- the plan -------------------------------------------------------------------------------
def nginx_step(nginx: Nginx, releases: dict[str, Release], green: int) -> dict[str, Any]:
    return {
        "upstream_file": str(nginx.include),
        "upstream": nginx.upstream,
        "servers": {name: release.address for name, release in releases.items()},
        "weights": {"blue": 100 - green, "green": green},
        "config": str(nginx.conf),
        "nginx": nginx.binary,
        "prefix": str(nginx.prefix),
    }


def write_plan(
    folder: Path,
    nginx: Nginx,
    releases: dict[str, Release],
    prom: Prometheus,
    strategy: str,
    stages: list[tuple[int, str]],  # (green's weight, hold)
) -> Path:
    def stage(green: int, hold: str) -> str:
        name = "flip to green" if strategy == "blue-green" else f"canary {green}%"
        step = json.dumps(nginx_step(nginx, releases, green))
        return (
            f"- name: {name}\n"
            f"  steps:\n"
            f"    - name: {green}% of traffic to green\n"
            f"      nginx: {step}\n"
            f"      timeout: 15s\n"
            f"  hold: {hold}\n"
        )

    query = error_ratio(releases["green"].address)
    text = (
        textwrap.dedent(f"""\
        plan: shop-deploy
        service: shop
        owner: web-team
        baseline:
          upstream: {{file_hash: {nginx.include}}}
        telemetry:
          green_errors:
            prometheus: {{url: "{prom.url}", query: '{query}'}}
            interval: 1s
        triggers:
          - name: {TRIGGER}
            signal: green_errors
            threshold: {{above: 0.1, for: 2s}}
            on_no_data: pause   # green takes no traffic yet: no evidence either way
        deploy:
          strategy: {strategy}
          stages:
        """)
        + textwrap.indent("".join(stage(green, hold) for green, hold in stages), "    ")
        + textwrap.dedent(f"""\
        steps:
          - name: all traffic to blue
            nginx: {json.dumps(nginx_step(nginx, releases, 0))}
            timeout: 15s
            idempotent: true
        verify:
          - name: nginx serves blue
            http: {{url: "{nginx.url}/", status: 200, contains: blue}}
            within: 10s
          - name: the upstream file is the baseline's
            file_hash: {{path: {nginx.include}, equals: "{{{{ baseline.upstream }}}}"}}
        """)
    )
    plan = folder / "plan.yaml"
    plan.write_text(text)
    return plan


# --- per test -------------------------------------------------------------------------------
@dataclass
class World:
    nginx: Nginx
    releases: dict[str, Release]
    prom: Prometheus
    settings: Settings
    folder: Path

    def plan(self, strategy: str, stages: list[tuple[int, str]]) -> Path:
        return write_plan(self.folder, self.nginx, self.releases, self.prom, strategy, stages)

    def green_share(self, requests: list[Logged]) -> float:
        counted = names(requests, self.releases)
        return counted["green"] / max(1, sum(counted.values()))


@pytest.fixture
def world(
    nginx: Nginx,
    releases: dict[str, Release],
    prom: Prometheus,
    store_url: str,
    tmp_path: Path,
) -> World:
    releases["green"].failing = 0.0
    # all traffic on blue, written by the same action the plan uses
    before = nginx.workers()
    outcome = NginxAction().execute(
        NginxOptions.model_validate(nginx_step(nginx, releases, 0)),
        Context(workdir=tmp_path, timeout=10.0),
    )
    assert outcome.ok, outcome
    nginx.wait_reloaded(before)
    # an earlier test's green traffic must have left Prometheus' rate window
    prom.wait_for(error_ratio(releases["green"].address), idle, timeout=20)
    return World(
        nginx, releases, prom, Settings(database_url=store_url, actor="deployer"), tmp_path
    )


def deploy(world: World, plan: Path) -> tuple[RunReport, list[Event], list[Logged]]:
    """Snapshot, then deploy under traffic; all traffic went to blue before the deploy."""
    commands.snapshot(caller(world.settings), plan, telemetry_window=0.5)
    start = world.nginx.log_size()
    with Traffic(world.nginx.url) as traffic:
        time.sleep(1.0)
        before = logged(world.nginx, start)
        report = commands.deploy(caller(world.settings), plan, release="v2")
    assert not traffic.failures, traffic.failures[:3]
    assert len(before) >= RATE * 0.5
    assert set(names(before, world.releases)) == {"blue"}, names(before, world.releases)
    assert {r.status for r in before} == {200}
    events = commands.journal(caller(world.settings), report.run_id)
    return report, events, logged(world.nginx, start)


def checkpoint_windows(events: list[Event]) -> dict[int, tuple[float, float]]:
    """Per stage: from its checkpoint's start (+0.5 s for the reload) to its end."""
    starts = {e.data["stage"]: e.at for e in events if e.kind == "checkpoint_started"}
    ends = {
        e.data["stage"]: e.at for e in events if e.kind in ("checkpoint_passed", "trigger_fired")
    }
    return {stage: (start + 0.5, ends[stage]) for stage, start in starts.items()}


def finished_steps(report: RunReport, events: list[Event]) -> list[str]:
    steps = [s.name for s in report.steps]
    return [steps[e.step] for e in events if e.kind == "step_finished" and e.step is not None]


def go_bad_at(world: World, green_weight: int) -> threading.Thread:
    """Make green fail once nginx's upstream file gives it ``green_weight``."""
    marker = re.compile(rf"weight={green_weight};\s+# green")

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if marker.search(world.nginx.include.read_text()):
                world.releases["green"].failing = FAILING
                return
            time.sleep(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def assert_backed_out(report: RunReport) -> None:
    assert (report.status, report.result, report.exit_code) == ("succeeded", "backed_out", 4)
    assert report.verified
    assert report.trigger is not None
    assert report.trigger["trigger"] == TRIGGER
    assert report.trigger["trigger_kind"] == "threshold"
    assert report.trigger["evidence"]["statistic"] > 0.1


def assert_all_to(world: World, name: str, count: int = 100) -> None:
    after = send(world.nginx, count)
    assert len(after) == count
    assert names(after, world.releases) == Counter({name: count})
    assert {r.status for r in after} == {200}


# --- blue-green -----------------------------------------------------------------------------
def test_blue_green_bad_release_goes_back_to_blue(world: World) -> None:
    world.releases["green"].failing = FAILING
    plan = world.plan("blue-green", [(100, "8s")])
    report, events, requests = deploy(world, plan)
    assert_backed_out(report)
    assert finished_steps(report, events) == [
        "flip to green: 100% of traffic to green",
        "undo flip to green: 100% of traffic to green",
        "all traffic to blue",
    ]
    start, fired = checkpoint_windows(events)[0]
    during = between(requests, start, fired)
    assert set(names(during, world.releases)) == {"green"}  # the flip was complete
    assert 0.25 < sum(r.status == 500 for r in during) / len(during) < 0.55
    assert_all_to(world, "blue")


@SQLITE_ONLY
def test_blue_green_good_release_is_promoted(world: World) -> None:
    plan = world.plan("blue-green", [(100, "4s")])
    report, events, requests = deploy(world, plan)
    assert (report.status, report.result, report.exit_code) == ("succeeded", "promoted", 0)
    start, passed = checkpoint_windows(events)[0]
    assert set(names(between(requests, start, passed), world.releases)) == {"green"}
    promoted = next(e for e in events if e.kind == "promoted")
    live = hashlib.sha256(world.nginx.include.read_bytes()).hexdigest()
    assert promoted.data["baseline"]["upstream"] == live  # green 100% is the new baseline
    assert_all_to(world, "green")


# --- canary ---------------------------------------------------------------------------------
CANARY = [(5, "3s"), (25, "8s"), (50, "3s"), (100, "3s")]


@SQLITE_ONLY
def test_canary_bad_at_25_percent_reverses_two_stages_newest_first(world: World) -> None:
    plan = world.plan("canary", CANARY)
    go_bad_at(world, 25)
    report, events, requests = deploy(world, plan)
    assert_backed_out(report)
    fired = next(e for e in events if e.kind == "trigger_fired")
    assert fired.data["stage"] == 1
    assert finished_steps(report, events) == [
        "canary 5%: 5% of traffic to green",
        "canary 25%: 25% of traffic to green",
        "undo canary 25%: 25% of traffic to green",
        "undo canary 5%: 5% of traffic to green",
        "all traffic to blue",
    ]
    skipped = [
        report.steps[e.step].name for e in events if e.kind == "step_skipped" and e.step is not None
    ]
    assert sorted(skipped) == [
        "undo canary 100%: 100% of traffic to green",
        "undo canary 50%: 50% of traffic to green",
    ]
    windows = checkpoint_windows(events)
    assert set(windows) == {0, 1}
    assert 0.0 < world.green_share(between(requests, *windows[0])) < 0.15
    assert 0.12 < world.green_share(between(requests, *windows[1])) < 0.4
    assert_all_to(world, "blue")


@SQLITE_ONLY
def test_canary_good_release_is_promoted_stage_by_stage(world: World) -> None:
    plan = world.plan("canary", [(green, "3s") for green, _ in CANARY])
    report, events, requests = deploy(world, plan)
    assert (report.status, report.result, report.exit_code) == ("succeeded", "promoted", 0)
    assert [e.data["stage"] for e in events if e.kind == "checkpoint_passed"] == [0, 1, 2, 3]
    windows = checkpoint_windows(events)
    shares = [world.green_share(between(requests, *windows[s])) for s in range(4)]
    assert 0.0 < shares[0] < 0.15, shares
    assert 0.12 < shares[1] < 0.4, shares
    assert 0.35 < shares[2] < 0.65, shares
    assert shares[3] == 1.0, shares
    assert_all_to(world, "green")


# --- no data --------------------------------------------------------------------------------
@SQLITE_ONLY
def test_a_checkpoint_without_data_is_not_passed(world: World) -> None:
    # the stage keeps green at 0%: Prometheus has no rate for green, the trigger no data
    plan = world.plan("canary", [(0, "2s")])

    def pull_the_cord() -> None:
        time.sleep(6)  # three times the hold, all of it without data
        with contextlib.suppress(UsageError):  # the deploy may be over already
            commands.trigger(caller(world.settings), "shop", "no data after 6 s")

    threading.Thread(target=pull_the_cord, daemon=True).start()
    report, events, _ = deploy(world, plan)
    assert not [e for e in events if e.kind == "checkpoint_passed"]
    assert report.result == "backed_out"
    assert report.trigger is not None
    assert report.trigger["trigger"] == "manual"
