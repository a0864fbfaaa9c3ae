"""``scrape`` against a real local /metrics endpoint whose text changes between reads."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from backout.telemetry import SOURCES, SourceContext
from backout.telemetry.scrape import ScrapeOptions
from tests.unit.telemetry.servers import Clock, Endpoint

SCRAPE = SOURCES.get("scrape")


def counters(ok: float, errors: dict[str, float] | None = None) -> str:
    lines = [
        "# HELP http_requests_total Requests served.",
        "# TYPE http_requests_total counter",
        f'http_requests_total{{code="200",path="/"}} {ok}',
    ]
    lines += [f'http_requests_total{{code="{c}",path="/"}} {v}' for c, v in (errors or {}).items()]
    return "\n".join(lines) + "\n"


def ratio_options(url: str, **extra: object) -> ScrapeOptions:
    return ScrapeOptions.model_validate(
        {
            "url": url,
            "ratio": {
                "numerator": {"metric": "http_requests_total", "match": {"code": "5.."}},
                "denominator": {"metric": "http_requests_total"},
            },
            **extra,
        }
    )


def test_ratio_of_counter_increases_gives_events_and_trials(
    endpoint: Endpoint, context: Callable[..., SourceContext], clock: Clock
) -> None:
    endpoint.body = counters(100, {"500": 1, "503": 1, "404": 5})
    sampler = SCRAPE.open(ratio_options(endpoint.url()), context())
    endpoint.body = counters(180, {"500": 8, "503": 4, "404": 15})
    clock.advance(1.0)
    reading = sampler.read()
    # 10 new 5xx of 80 + 10 + 10 new requests (404s count as requests, not as errors)
    assert (reading.status, reading.events, reading.trials) == ("ok", 10, 100)
    assert reading.value == pytest.approx(0.1)
    assert reading.at == clock.now
    assert "10 of 100" in reading.detail


def test_errors_series_created_between_scrapes_counts_from_zero(
    endpoint: Endpoint, context: Callable[..., SourceContext]
) -> None:
    endpoint.body = counters(50)  # no 5xx yet: the client library has not created the series
    sampler = SCRAPE.open(ratio_options(endpoint.url()), context())
    endpoint.body = counters(95, {"502": 5})
    reading = sampler.read()
    assert (reading.events, reading.trials) == (5, 50)


def test_counter_reset_counts_the_new_value_not_a_negative_increase(
    endpoint: Endpoint, context: Callable[..., SourceContext]
) -> None:
    endpoint.body = counters(1000, {"500": 40})
    sampler = SCRAPE.open(ratio_options(endpoint.url()), context())
    endpoint.body = counters(18, {"500": 2})  # the process restarted
    reading = sampler.read()
    assert (reading.status, reading.events, reading.trials) == ("ok", 2, 20)
    endpoint.body = counters(36, {"500": 4})
    after = sampler.read()
    assert (after.events, after.trials) == (2, 20)


def test_no_traffic_between_scrapes_is_no_data_with_zero_counts(
    endpoint: Endpoint, context: Callable[..., SourceContext]
) -> None:
    endpoint.body = counters(10, {"500": 1})
    sampler = SCRAPE.open(ratio_options(endpoint.url()), context())
    reading = sampler.read()
    assert (reading.status, reading.events, reading.trials) == ("no_data", 0, 0)
    assert "no traffic" in reading.detail


def test_missing_denominator_is_no_data_and_says_what_exists(
    endpoint: Endpoint, context: Callable[..., SourceContext]
) -> None:
    endpoint.body = "# TYPE http_requests_count counter\nhttp_requests_count_total 3\n"
    options = ScrapeOptions.model_validate(
        {"url": endpoint.url(), "ratio": {"numerator": "http_requests", "denominator": "http_r"}}
    )
    reading = SCRAPE.open(options, context()).read()
    assert reading.status == "no_data"
    assert "no series matches http_r" in reading.detail
    assert "did you mean http_requests_count" in reading.detail


def test_gauge_is_aggregated_over_matching_series(
    endpoint: Endpoint, context: Callable[..., SourceContext]
) -> None:
    endpoint.body = (
        "# TYPE queue_depth gauge\n"
        'queue_depth{shard="a"} 3\nqueue_depth{shard="b"} 4\nqueue_depth{shard="c"} 10\n'
    )
    url = endpoint.url()
    read = SCRAPE.read
    assert read(ScrapeOptions(url=url, metric="queue_depth"), context()).value == 17
    assert (
        read(ScrapeOptions(url=url, metric="queue_depth", aggregate="max"), context()).value == 10
    )
    picked = ScrapeOptions(url=url, metric="queue_depth", match={"shard": "a|b"})
    assert read(picked, context()).value == 7
    nothing = read(ScrapeOptions(url=url, metric="queue_depth", match={"shard": "z"}), context())
    assert nothing.status == "no_data"
    assert "check the label matchers" in nothing.detail


def test_counter_in_auto_mode_is_a_rate_per_second(
    endpoint: Endpoint, context: Callable[..., SourceContext], clock: Clock
) -> None:
    endpoint.body = counters(100, {"500": 2})
    # the family name (without _total) finds the counter too, as PromQL users write it
    sampler = SCRAPE.open(ScrapeOptions(url=endpoint.url(), metric="http_requests"), context())
    endpoint.body = counters(140, {"500": 12})
    clock.advance(2.0)
    reading = sampler.read()
    assert reading.value == pytest.approx(25.0)  # 50 more requests in 2 s
    assert reading.events == 50
    assert reading.trials is None


def test_nan_gauge_is_no_data(endpoint: Endpoint, context: Callable[..., SourceContext]) -> None:
    endpoint.body = "# TYPE ratio gauge\nratio NaN\n"
    assert SCRAPE.read(ScrapeOptions(url=endpoint.url(), metric="ratio"), context()).status == (
        "no_data"
    )


def test_one_shot_read_of_a_ratio_scrapes_twice_an_interval_apart(
    endpoint: Endpoint, context: Callable[..., SourceContext]
) -> None:
    endpoint.body = counters(10, {"500": 1})
    reading = SCRAPE.read(ratio_options(endpoint.url()), context(interval=0.05, clock=time.time))
    assert len(endpoint.requests) == 2
    assert reading.status == "no_data"  # the counters did not move in between


def test_server_errors_and_garbage_are_error_readings(
    endpoint: Endpoint, context: Callable[..., SourceContext]
) -> None:
    options = ScrapeOptions(url=endpoint.url(), metric="up")
    endpoint.status, endpoint.body = 500, "oops"
    failed = SCRAPE.read(options, context())
    assert (failed.status, failed.value) == ("error", None)
    assert "status 500" in failed.detail
    endpoint.status, endpoint.body = 200, "this is { not prometheus\n"
    garbage = SCRAPE.read(options, context())
    assert garbage.status == "error"
    assert "not Prometheus text format" in garbage.detail


def test_slow_endpoint_is_a_timeout_reading_within_the_budget(
    endpoint: Endpoint, context: Callable[..., SourceContext]
) -> None:
    endpoint.body, endpoint.delay = counters(1), 2.0
    started = time.perf_counter()
    reading = SCRAPE.read(ScrapeOptions(url=endpoint.url(), metric="up"), context(timeout=0.2))
    assert reading.status == "timeout"
    assert time.perf_counter() - started < 1.5


def test_unreachable_endpoint_is_an_error_reading_not_an_exception(
    closed_port_url: str, context: Callable[..., SourceContext]
) -> None:
    sampler = SCRAPE.open(ratio_options(closed_port_url), context())
    reading = sampler.read()
    assert reading.status == "error"
    assert "ConnectError" in reading.detail


def test_sampler_recovers_after_a_failed_scrape(
    endpoint: Endpoint, context: Callable[..., SourceContext]
) -> None:
    endpoint.body = counters(100, {"500": 0})
    sampler = SCRAPE.open(ratio_options(endpoint.url()), context())
    endpoint.status = 503
    assert sampler.read().status == "error"
    endpoint.status, endpoint.body = 200, counters(150, {"500": 10})
    reading = sampler.read()  # measured against the last good scrape
    assert (reading.events, reading.trials) == (10, 60)


def test_options_need_exactly_one_mode_and_valid_regexes() -> None:
    with pytest.raises(ValidationError, match="either metric"):
        ScrapeOptions.model_validate({"url": "http://x/metrics"})
    with pytest.raises(ValidationError, match="is not a regex"):
        ScrapeOptions.model_validate({"url": "u", "metric": "m", "match": {"code": "5(("}})
    with pytest.raises(ValidationError, match="either metric"):
        ratio_options("u", metric="m")


def test_describe_names_the_query_and_the_url() -> None:
    text = SCRAPE.describe(ratio_options("http://127.0.0.1:8080/metrics"))
    assert text == (
        'increase of http_requests_total{code=~"5.."} / http_requests_total '
        "scraped from http://127.0.0.1:8080/metrics"
    )
