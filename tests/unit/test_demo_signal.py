"""The demo plan's telemetry and triggers against the demo service itself: its /metrics
feeds the plan's `scrape` signal, and the plan's triggers tell v2 from v1 quickly."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from backout.demo.service import Counters, make_handler
from backout.plans import load_plan
from backout.spec.models import Plan
from backout.spec.templating import render_value
from backout.telemetry import SOURCES, Reading, SourceContext
from backout.telemetry.detectors.base import Detector
from backout.triggers.kinds import TRIGGERS, Baseline

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"
INTERVAL_S = 0.25  # the plan's signal interval
PER_READING = 10  # 40 requests/s of demo traffic, read every 250 ms


@pytest.fixture(scope="module")
def plan() -> Plan:
    return load_plan(EXAMPLE).plan


@pytest.fixture
def service() -> Iterator[tuple[str, Counters]]:
    """The demo service's handler, answering 500 to 30% of requests, on a free port."""
    counters = Counters(0.3)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler("v2", "hello", counters))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield str(server.server_address[1]), counters
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def detector(plan: Plan, kind: str, baseline: Baseline) -> Detector:
    trigger = next(t for t in plan.triggers if t.kind == kind)
    trigger_kind = TRIGGERS.get(kind)
    options = trigger_kind.Options.model_validate(trigger.options)
    built = trigger_kind.build(options, trigger.name, trigger.signal or "", baseline)
    assert built is not None
    return built


def snapshot_of_v1(requests: int = 80) -> Baseline:
    """What two seconds of v1 (no errors) look like in the snapshot."""
    return Baseline({"errors": Reading(0.0, "ok", 0.0, events=0, trials=requests)})


def readings(error_share: float, seconds: float) -> list[Reading]:
    """One reading per interval of a service failing ``error_share`` evenly."""
    counters = Counters(error_share)
    out = []
    for tick in range(1, round(seconds / INTERVAL_S) + 1):
        codes = [counters.next_code() for _ in range(PER_READING)]
        errors = codes.count(500)
        out.append(Reading(tick * INTERVAL_S, "ok", errors / PER_READING, errors, PER_READING))
    return out


def first_fail(detector: Detector, feed: list[Reading]) -> float | None:
    return next((r.at for r in feed if detector.update(r).verdict == "fail"), None)


def test_the_plan_reads_the_services_own_error_ratio(
    plan: Plan, service: tuple[str, Counters]
) -> None:
    port, _ = service
    signal = plan.telemetry["errors"]
    source = SOURCES.get(signal.kind)
    options = source.Options.model_validate(
        render_value(signal.options, {"env": {"BACKOUT_DEMO_PORT": port}})
    )
    sampler = source.open(options, SourceContext(timeout=signal.timeout, interval=INTERVAL_S))
    with httpx.Client() as client:
        codes = [client.get(f"http://127.0.0.1:{port}/").status_code for _ in range(20)]
    reading = sampler.read()
    assert codes.count(500) == 6
    assert (reading.status, reading.events, reading.trials) == ("ok", 6, 20)
    assert reading.value == pytest.approx(0.3)


def test_no_request_in_an_interval_is_no_data(plan: Plan, service: tuple[str, Counters]) -> None:
    port, _ = service
    signal = plan.telemetry["errors"]
    source = SOURCES.get(signal.kind)
    options = source.Options.model_validate(
        render_value(signal.options, {"env": {"BACKOUT_DEMO_PORT": port}})
    )
    sampler = source.open(options, SourceContext(timeout=signal.timeout, interval=INTERVAL_S))
    assert sampler.read().status == "no_data"


def test_the_sequential_trigger_catches_v2_within_two_seconds(plan: Plan) -> None:
    caught = first_fail(detector(plan, "sequential", snapshot_of_v1()), readings(0.3, 10.0))
    assert caught is not None
    assert caught <= 2.0


def test_the_sequential_trigger_fires_before_the_threshold_safety_net(plan: Plan) -> None:
    """The demo tells one story: the statistical trigger is faster than `for: 3s`."""
    feed = readings(0.3, 10.0)
    sequential = first_fail(detector(plan, "sequential", snapshot_of_v1()), feed)
    threshold = first_fail(detector(plan, "threshold", snapshot_of_v1()), feed)
    assert sequential is not None
    assert threshold is not None
    assert sequential < threshold


@pytest.mark.parametrize("kind", ["sequential", "threshold"])
def test_a_healthy_release_never_fires(plan: Plan, kind: str) -> None:
    assert first_fail(detector(plan, kind, snapshot_of_v1()), readings(0.0, 120.0)) is None


def test_a_short_snapshot_still_catches_v2_in_time(plan: Plan) -> None:
    """A busy machine may fit half the traffic into the snapshot: a wider baseline bound."""
    caught = first_fail(detector(plan, "sequential", snapshot_of_v1(40)), readings(0.3, 10.0))
    assert caught is not None
    assert caught < 5.0


def test_the_service_fails_its_share_evenly_and_exposes_it() -> None:
    counters = Counters(0.3)
    codes = [counters.next_code() for _ in range(100)]
    assert codes.count(500) == 30
    assert all(codes[i : i + 10].count(500) == 3 for i in range(0, 100, 10))
    exposition = counters.exposition()
    assert 'demo_http_requests_total{code="500"} 30' in exposition
    assert 'demo_http_requests_total{code="200"} 70' in exposition
