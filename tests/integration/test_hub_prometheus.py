"""The telemetry hub against a real Prometheus: the same query from many signals is sent
once each interval, as Prometheus' own count of the queries it answered shows."""

from __future__ import annotations

import httpx
import pytest

from backout.telemetry import SOURCES, SourceContext
from backout.telemetry.hub import TelemetryHub
from tests.services import Prometheus
from tests.unit.telemetry.test_hub import Inbox


def _queries_answered(prometheus: Prometheus) -> float:
    """Prometheus' own live count of the instant queries it answered (its /metrics)."""
    from backout.telemetry.scrape import parse

    text = httpx.get(f"{prometheus.url}/metrics", timeout=10).text
    return sum(
        entry.value
        for (name, labels), entry in parse(text).items()
        if name == "prometheus_http_requests_total" and ("handler", "/api/v1/query") in labels
    )


def test_the_same_query_from_many_signals_goes_to_prometheus_once_each_interval(
    prometheus: Prometheus,
) -> None:
    inbox = Inbox()
    names = [f"q{i}" for i in range(5)]
    options = SOURCES.get("prometheus").Options.model_validate(
        {"url": prometheus.url, "query": "vector(42)"}
    )
    before = _queries_answered(prometheus)
    with TelemetryHub() as hub:
        ctx = SourceContext(timeout=5.0, interval=0.2)
        for name in names:
            hub.subscribe("prometheus", options, ctx, 0.2, inbox.to(name))
        inbox.wait(names, at_least=4)
        sent = hub.requests
    answered = _queries_answered(prometheus) - before
    assert answered == pytest.approx(sent, abs=1)  # what the hub sent is what was answered
    assert sent <= inbox.count(names[0]) + 2 < len(names) * 4  # once a tick, not once a signal
    values = {r.value for name in names for r, _ in inbox.readings[name]}
    assert values == {42.0}
