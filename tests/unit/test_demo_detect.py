"""The demo's trigger: error share over a sliding window of counter samples."""

from __future__ import annotations

import pytest

from backout.demo.detect import (
    Reading,
    Rule,
    Sample,
    breached,
    evaluate,
    parse_counts,
    read_window,
)
from backout.demo.service import Counters

RULE = Rule(threshold=0.10, window_s=2.0, min_requests=20)


def steady(seconds: float, per_s: int, error_share: float, start: float = 0.0) -> list[Sample]:
    """Samples every 0.1 s of a service serving ``per_s`` requests/s, failing a share."""
    samples = []
    for tick in range(round(seconds * 10) + 1):
        served = per_s * tick / 10
        samples.append(Sample(start + tick / 10, served, served * error_share))
    return samples


def test_error_share_above_the_threshold_breaches() -> None:
    reading, breach = evaluate(steady(1.0, 40, 0.3), RULE)
    assert breach
    assert reading.requests == pytest.approx(40)
    assert reading.error_share == pytest.approx(0.3)


def test_error_share_below_the_threshold_does_not_breach() -> None:
    reading, breach = evaluate(steady(3.0, 40, 0.05), RULE)
    assert not breach
    assert reading.error_share == pytest.approx(0.05)


def test_a_share_equal_to_the_threshold_does_not_breach() -> None:
    assert not breached(Reading(100, 10), RULE)
    assert breached(Reading(100, 11), RULE)


def test_too_few_requests_never_breach() -> None:
    reading, breach = evaluate(steady(0.5, 20, 1.0), RULE)
    assert reading.requests == pytest.approx(10)
    assert reading.error_share == 1.0
    assert not breach


def test_no_traffic_reads_as_no_errors() -> None:
    assert Reading(0, 0).error_share == 0.0
    assert evaluate(steady(1.0, 0, 0.0), RULE) == (Reading(0, 0), False)


def test_fewer_than_two_samples_read_as_nothing() -> None:
    assert read_window([], 2.0) == Reading(0, 0)
    assert read_window([Sample(1.0, 500, 400)], 2.0) == Reading(0, 0)


def test_errors_older_than_the_window_do_not_count() -> None:
    bad = steady(2.0, 40, 0.5)
    last = bad[-1]
    good = [Sample(last.at + t / 10, last.requests + 4 * t, last.errors) for t in range(1, 31)]
    reading = read_window(bad + good, 2.0)
    assert reading.requests == pytest.approx(80)
    assert reading.errors == 0


def test_the_window_starts_at_the_sample_before_it() -> None:
    samples = [Sample(0.0, 0, 0), Sample(1.0, 10, 5), Sample(3.5, 30, 5)]
    assert read_window(samples, 2.0) == Reading(20, 0)
    assert read_window(samples, 3.0) == Reading(30, 5)


def test_a_counter_reset_counts_from_zero() -> None:
    # the process restarted between the samples: 900 -> 12 means 12 new requests
    samples = [Sample(0.0, 800, 0), Sample(0.5, 900, 0), Sample(1.0, 12, 6), Sample(1.5, 40, 14)]
    assert read_window(samples, 2.0) == Reading(100 + 12 + 28, 14)


def test_parse_counts_sums_codes_and_counts_5xx_as_errors() -> None:
    text = (
        "# HELP demo_http_requests_total Requests.\n"
        "# TYPE demo_http_requests_total counter\n"
        'demo_http_requests_total{code="200"} 70\n'
        'demo_http_requests_total{code="404"} 5\n'
        'demo_http_requests_total{code="500"} 20\n'
        'demo_http_requests_total{code="503"} 5\n'
        "# TYPE other_total counter\n"
        'other_total{code="500"} 1000\n'
    )
    assert parse_counts(text) == (100, 25)


def test_parse_counts_of_no_metric_is_zero() -> None:
    assert parse_counts("") == (0, 0)


def test_the_demo_service_fails_its_share_evenly_and_exposes_it() -> None:
    counters = Counters(0.3)
    codes = [counters.next_code() for _ in range(100)]
    assert codes.count(500) == 30
    assert all(codes[i : i + 10].count(500) == 3 for i in range(0, 100, 10))
    assert parse_counts(counters.exposition()) == (100, 30)


def test_a_healthy_release_exposes_a_zero_counter() -> None:
    assert parse_counts(Counters(0.0).exposition()) == (0, 0)
