"""The ``prometheus`` fixture works: a real Prometheus scrapes a tiny app's counter every
second, and its HTTP API gives back the values the app exposed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.services import Backend, Handler, Prometheus


class App:
    """Exposes ``app_requests_total`` in the Prometheus text format."""

    def __init__(self) -> None:
        self.requests = 0

    def metrics(self, path: str) -> tuple[int, str, str]:
        if path != "/metrics":
            return 404, "text/plain", "not found\n"
        body = (
            "# HELP app_requests_total Requests served.\n"
            "# TYPE app_requests_total counter\n"
            f'app_requests_total{{code="200"}} {self.requests}\n'
        )
        return 200, "text/plain; version=0.0.4", body


@pytest.fixture
def app() -> App:
    return App()


@pytest.fixture
def app_backend(app: App, http_backend: Callable[[Handler], Backend]) -> Backend:
    return http_backend(app.metrics)


@pytest.fixture
def prometheus_targets(app_backend: Backend) -> list[str]:
    return [app_backend.address]


def value_is(expected: float) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda result: bool(result) and float(result[0]["value"][1]) == expected


def test_scraped_values_arrive(prometheus: Prometheus, app: App, app_backend: Backend) -> None:
    app.requests = 7
    up = prometheus.wait_for('up{job="backout-test"}', value_is(1))
    assert up[0]["metric"]["instance"] == app_backend.address
    seen = prometheus.wait_for("app_requests_total", value_is(7))
    assert seen[0]["metric"]["code"] == "200"

    app.requests = 19  # a later scrape (1 s apart) brings the new value
    prometheus.wait_for("app_requests_total", value_is(19))
    assert app_backend.hits >= 2
