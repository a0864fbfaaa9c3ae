"""The telemetry hub of a process watching many deployments (telemetry/hub.py): each target
read once per interval however many signals read it, against a real HTTP target server
(tests/integration/test_hub_prometheus.py does the same against a real Prometheus)."""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from backout.telemetry import SOURCES, Reading, SourceContext
from backout.telemetry.hub import Subscription, TelemetryHub
from tests.fleet_targets import TargetServer
from tests.services import wait_until

DEADLINE = 30.0
RATIO = {
    "numerator": {"metric": "http_requests_total", "match": {"code": "5.."}},
    "denominator": {"metric": "http_requests_total"},
}


class Inbox:
    """Readings per subscriber, and a way to wait for enough of them."""

    def __init__(self) -> None:
        self.readings: dict[str, list[tuple[Reading, float]]] = defaultdict(list)
        self.lock = threading.Lock()

    def to(self, name: str) -> Callable[[Reading, float], None]:
        def deliver(reading: Reading, due: float) -> None:
            with self.lock:
                self.readings[name].append((reading, due))

        return deliver

    def count(self, name: str) -> int:
        with self.lock:
            return len(self.readings[name])

    def wait(self, names: list[str], at_least: int) -> None:
        wait_until(
            lambda: all(self.count(n) >= at_least for n in names),
            DEADLINE,
            f"{at_least} readings for each of {names}",
        )


def scrape_options(url: str) -> object:
    return SOURCES.get("scrape").Options.model_validate({"url": url, "ratio": RATIO})


def test_many_signals_on_one_target_share_one_scrape_each_interval() -> None:
    inbox = Inbox()
    names = [f"s{i}" for i in range(6)]
    with TargetServer(bad={0}) as targets, TelemetryHub() as hub:
        ctx = SourceContext(timeout=5.0, interval=0.1)
        for name in names:
            hub.subscribe("scrape", scrape_options(targets.url(0)), ctx, 0.1, inbox.to(name))
        inbox.wait(names, at_least=4)
        served = targets.requests
    first = inbox.count(names[0])
    # one GET per interval for all six (plus the first scrape, and a tick in flight), not six
    assert served == hub.requests
    assert served <= first + 3 < len(names) * 4
    for name in names:
        readings = [reading for reading, _ in inbox.readings[name]]
        assert all(r.ok for r in readings), readings
        # target 0 is bad from the start: half its requests fail, in every subscriber's view
        assert all(r.value == pytest.approx(0.5, abs=0.05) for r in readings)
        # with its counts (rounded: the test target's counters grow by fractions, and two
        # scrapes a few ms apart on a loaded machine see less than one request between them)
        assert all(r.events is not None and r.trials is not None for r in readings)


def test_each_reading_says_when_it_was_due_on_the_intervals_grid() -> None:
    inbox = Inbox()
    with TargetServer() as targets, TelemetryHub() as hub:
        ctx = SourceContext(timeout=5.0, interval=0.2)
        hub.subscribe("scrape", scrape_options(targets.url(1)), ctx, 0.2, inbox.to("one"))
        inbox.wait(["one"], at_least=4)
    dues = [due for _, due in inbox.readings["one"]]
    gaps = [later - earlier for earlier, later in itertools.pairwise(dues)]
    # whole intervals apart (a late tick skips to the next one, never bunches up)
    assert all(gap == pytest.approx(round(gap / 0.2) * 0.2, abs=1e-6) and gap > 0 for gap in gaps)
    assert all(due <= time.monotonic() for due in dues)


def test_targets_differ_by_url_and_interval_and_the_last_to_leave_stops_the_reads() -> None:
    inbox = Inbox()
    with TargetServer(bad={2}) as targets, TelemetryHub() as hub:
        fast = SourceContext(timeout=5.0, interval=0.1)
        good = hub.subscribe("scrape", scrape_options(targets.url(1)), fast, 0.1, inbox.to("good"))
        bad = hub.subscribe("scrape", scrape_options(targets.url(2)), fast, 0.1, inbox.to("bad"))
        inbox.wait(["good", "bad"], at_least=3)
        assert all(r.value == 0.0 for r, _ in inbox.readings["good"])
        assert all(r.value == pytest.approx(0.5, abs=0.05) for r, _ in inbox.readings["bad"])
        for subscription in (good, bad):
            hub.unsubscribe(subscription)
        before = targets.requests
        counts = (inbox.count("good"), inbox.count("bad"))
        # nothing reads them any more: a later subscriber's reads are the only ones
        probe = hub.subscribe("scrape", scrape_options(targets.url(3)), fast, 0.1, inbox.to("p"))
        inbox.wait(["p"], at_least=3)
        hub.unsubscribe(probe)
        assert (inbox.count("good"), inbox.count("bad")) == counts
        assert targets.requests - before <= inbox.count("p") + 3


def test_a_refused_target_is_an_error_reading_not_a_crash() -> None:
    inbox = Inbox()
    with TargetServer() as targets:
        url = targets.url(1)
    # the server is gone: its port refuses connections now
    with TelemetryHub() as hub:
        ctx = SourceContext(timeout=2.0, interval=0.1)
        hub.subscribe("scrape", scrape_options(url), ctx, 0.1, inbox.to("gone"))
        inbox.wait(["gone"], at_least=2)
    readings = [r for r, _ in inbox.readings["gone"]]
    assert all(r.status == "error" for r in readings)
    assert all("ConnectError" in r.detail for r in readings), readings[0].detail


def test_other_kinds_read_in_the_thread_pool(tmp_path: Path) -> None:
    inbox = Inbox()
    options = SOURCES.get("command").Options.model_validate({"argv": ["echo", "0.25"]})
    with TelemetryHub() as hub:
        ctx = SourceContext(timeout=5.0, interval=0.1, workdir=tmp_path)
        subscriptions: list[Subscription] = [
            hub.subscribe("command", options, ctx, 0.1, inbox.to(name)) for name in ("a", "b")
        ]
        inbox.wait(["a", "b"], at_least=2)
        assert subscriptions[0].target is not subscriptions[1].target  # never shared
    assert all(r.value == 0.25 for name in "ab" for r, _ in inbox.readings[name])
