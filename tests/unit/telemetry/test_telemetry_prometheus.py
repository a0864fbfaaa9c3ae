"""``prometheus`` against a local HTTP server answering in the Prometheus API's JSON shapes
(a real Prometheus server is exercised by the integration suite)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from backout.telemetry import SOURCES, SourceContext
from backout.telemetry.prometheus import PrometheusOptions
from tests.unit.telemetry.servers import Clock, Endpoint

PROMETHEUS = SOURCES.get("prometheus")
QUERY = 'sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))'


def vector(*values: str) -> dict[str, object]:
    result = [
        {"metric": {"job": f"api-{i}"}, "value": [1700000000.0, value]}
        for i, value in enumerate(values)
    ]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def options(endpoint: Endpoint, **extra: object) -> PrometheusOptions:
    return PrometheusOptions.model_validate({"url": endpoint.url(""), "query": QUERY, **extra})


def test_instant_query_with_one_series_is_its_value(
    endpoint: Endpoint, context: Callable[..., SourceContext], clock: Clock
) -> None:
    endpoint.serve_json(vector("0.0425"))
    reading = PROMETHEUS.read(options(endpoint), context(timeout=3.0))
    assert (reading.status, reading.value, reading.at) == ("ok", 0.0425, clock.now)
    path, params = endpoint.requests[-1]
    assert path == "/api/v1/query"
    assert params["query"] == [QUERY]
    assert params["timeout"] == ["3s"]  # Prometheus gives up when we do


def test_scalar_result_is_its_value(
    endpoint: Endpoint, context: Callable[..., SourceContext]
) -> None:
    endpoint.serve_json(
        {"status": "success", "data": {"resultType": "scalar", "result": [1.7e9, "12"]}}
    )
    assert PROMETHEUS.read(options(endpoint), context()).value == 12.0


def test_empty_result_is_no_data(endpoint: Endpoint, context: Callable[..., SourceContext]) -> None:
    endpoint.serve_json(vector())
    reading = PROMETHEUS.read(options(endpoint), context())
    assert (reading.status, reading.value) == ("no_data", None)
    assert "no series" in reading.detail


def test_nan_is_no_data(endpoint: Endpoint, context: Callable[..., SourceContext]) -> None:
    endpoint.serve_json(vector("NaN"))  # 0/0: no requests in the window
    assert PROMETHEUS.read(options(endpoint), context()).status == "no_data"


def test_several_series_is_an_error_that_says_to_aggregate(
    endpoint: Endpoint, context: Callable[..., SourceContext]
) -> None:
    endpoint.serve_json(vector("0.1", "0.2"))
    reading = PROMETHEUS.read(options(endpoint), context())
    assert reading.status == "error"
    assert "2 series" in reading.detail
    assert "sum()" in reading.detail


def test_error_answer_keeps_prometheus_message(
    endpoint: Endpoint, context: Callable[..., SourceContext]
) -> None:
    endpoint.serve_json(
        {
            "status": "error",
            "errorType": "bad_data",
            "error": 'invalid parameter "query": 1:5: parse error: unexpected ")"',
        },
        status=400,
    )
    reading = PROMETHEUS.read(options(endpoint), context())
    assert reading.status == "error"
    assert 'bad_data: invalid parameter "query": 1:5: parse error' in reading.detail


def test_query_timeout_answer_is_a_timeout_reading(
    endpoint: Endpoint, context: Callable[..., SourceContext]
) -> None:
    endpoint.serve_json(
        {"status": "error", "errorType": "timeout", "error": "query timed out in expression"},
        status=503,
    )
    assert PROMETHEUS.read(options(endpoint), context()).status == "timeout"


def test_range_query_returns_every_point_as_a_sample(
    endpoint: Endpoint, context: Callable[..., SourceContext], clock: Clock
) -> None:
    matrix = [
        {"metric": {"pod": "a"}, "values": [[1.0, "0.2"], [16.0, "0.4"]]},
        {"metric": {"pod": "b"}, "values": [[1.0, "0.3"], [16.0, "NaN"]]},
    ]
    endpoint.serve_json({"status": "success", "data": {"resultType": "matrix", "result": matrix}})
    reading = PROMETHEUS.read(options(endpoint, range="5m", step="15s"), context())
    assert reading.samples == (0.2, 0.4, 0.3)
    assert reading.value == pytest.approx(0.3)
    path, params = endpoint.requests[-1]
    assert path == "/api/v1/query_range"
    assert float(params["end"][0]) == pytest.approx(clock.now)
    assert float(params["end"][0]) - float(params["start"][0]) == pytest.approx(300.0)
    assert params["step"] == ["15"]


def test_not_json_is_an_error_with_the_status(
    endpoint: Endpoint, context: Callable[..., SourceContext]
) -> None:
    endpoint.status, endpoint.body = 502, "<html>Bad Gateway</html>"
    reading = PROMETHEUS.read(options(endpoint), context())
    assert reading.status == "error"
    assert "status 502" in reading.detail


def test_unexpected_shape_is_an_error_not_an_exception(
    endpoint: Endpoint, context: Callable[..., SourceContext]
) -> None:
    endpoint.serve_json({"status": "success", "data": {"resultType": "vector"}})
    assert PROMETHEUS.read(options(endpoint), context()).status == "error"


def test_silent_server_is_a_timeout_reading(
    endpoint: Endpoint, context: Callable[..., SourceContext]
) -> None:
    endpoint.serve_json(vector("1"))
    endpoint.delay = 2.0
    started = time.perf_counter()
    assert PROMETHEUS.read(options(endpoint), context(timeout=0.2)).status == "timeout"
    assert time.perf_counter() - started < 1.5


def test_unreachable_server_is_an_error_reading(
    closed_port_url: str, context: Callable[..., SourceContext]
) -> None:
    reading = PROMETHEUS.read(PrometheusOptions(url=closed_port_url, query="up"), context())
    assert reading.status == "error"


def test_describe_and_default_interval() -> None:
    text = PROMETHEUS.describe(PrometheusOptions(url="http://p:9090", query="up", range="5m"))
    assert text == "PromQL 'up' over the last 5m at http://p:9090"
    assert PROMETHEUS.default_interval == 15.0


def test_a_range_of_one_point_says_one_point() -> None:
    from backout.telemetry.prometheus import interpret

    one = {"resultType": "matrix", "result": [{"metric": {}, "values": [[1.0, "0.5"]]}]}
    two = {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "1"], [2, "2"]]}]}
    assert interpret({"status": "success", "data": one}, 1.0, "q").detail == (
        "q: 1 point from 1 series"
    )
    assert interpret({"status": "success", "data": two}, 1.0, "q").detail == (
        "q: 2 points from 1 series"
    )
