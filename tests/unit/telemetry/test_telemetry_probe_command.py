"""``http_probe`` against a real local server; ``command`` with real processes."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from backout.telemetry import SOURCES, SourceContext
from backout.telemetry.command import CommandSignalOptions
from backout.telemetry.http_probe import HttpProbeOptions
from tests.unit.telemetry.servers import Endpoint

PROBE = SOURCES.get("http_probe")
COMMAND = SOURCES.get("command")


def test_probe_counts_failures_and_keeps_latencies(
    endpoint: Endpoint, context: Callable[..., SourceContext]
) -> None:
    endpoint.statuses = [200, 500, 200, 503, 200]
    reading = PROBE.read(HttpProbeOptions(url=endpoint.url("/health")), context())
    assert (reading.status, reading.events, reading.trials) == ("ok", 2, 5)
    assert reading.value == pytest.approx(0.4)
    assert len(reading.samples) == 5
    assert all(0 < latency < 2 for latency in reading.samples)
    assert "last failure: status 503" in reading.detail


def test_probe_latency_measures(endpoint: Endpoint, context: Callable[..., SourceContext]) -> None:
    endpoint.delay = 0.05
    url = endpoint.url("/health")
    mean = PROBE.read(HttpProbeOptions(url=url, samples=3, measure="latency_mean"), context())
    p99 = PROBE.read(HttpProbeOptions(url=url, samples=3, measure="latency_p99"), context())
    assert mean.value is not None
    assert p99.value is not None
    assert 0.05 <= mean.value < 1.0
    assert mean.value == pytest.approx(sum(mean.samples) / 3)
    assert p99.value == pytest.approx(max(p99.samples), rel=0.01)  # p99 of 3 is near the max


def test_probe_expected_status_is_configurable(
    endpoint: Endpoint, context: Callable[..., SourceContext]
) -> None:
    endpoint.status = 204
    options = HttpProbeOptions(url=endpoint.url("/"), status=204, samples=2)
    assert PROBE.read(options, context()).value == 0.0


def test_probe_that_reaches_nothing_is_an_error_reading_with_counts(
    closed_port_url: str, context: Callable[..., SourceContext]
) -> None:
    reading = PROBE.read(HttpProbeOptions(url=closed_port_url, samples=3), context())
    assert (reading.status, reading.value) == ("error", None)
    assert (reading.events, reading.trials) == (3, 3)
    assert "no answer to any request" in reading.detail


def test_probe_of_a_silent_server_is_a_timeout_within_the_budget(
    endpoint: Endpoint, context: Callable[..., SourceContext]
) -> None:
    endpoint.delay = 2.0
    started = time.perf_counter()
    reading = PROBE.read(HttpProbeOptions(url=endpoint.url("/"), samples=5), context(timeout=0.3))
    assert reading.status == "timeout"
    assert time.perf_counter() - started < 1.5  # not 5 x the timeout


def test_probe_options_shorthand_and_bounds() -> None:
    assert HttpProbeOptions.model_validate("http://x/health").samples == 5
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        HttpProbeOptions(url="http://x", samples=0)


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_command_reads_the_first_number_of_stdout_only(
    context: Callable[..., SourceContext],
) -> None:
    argv = py("import sys; print('7 warnings', file=sys.stderr); print('error ratio: 0.042 now')")
    reading = COMMAND.read(CommandSignalOptions(argv=argv), context())
    assert (reading.status, reading.value) == ("ok", 0.042)


def test_command_without_a_number_or_failing_is_an_error(
    context: Callable[..., SourceContext],
) -> None:
    no_number = COMMAND.read(CommandSignalOptions(argv=py("print('p99=120ms')")), context())
    assert no_number.status == "error"
    assert "printed no number" in no_number.detail
    failing = COMMAND.read(
        CommandSignalOptions(argv=py("import sys; print('db down', file=sys.stderr); sys.exit(3)")),
        context(),
    )
    assert failing.status == "error"
    assert "exited 3: db down" in failing.detail


def test_command_nan_is_no_data(context: Callable[..., SourceContext]) -> None:
    assert (
        COMMAND.read(CommandSignalOptions(argv=py("print('nan')")), context()).status == "no_data"
    )


def test_command_past_its_budget_is_a_timeout_and_is_killed(
    context: Callable[..., SourceContext],
) -> None:
    started = time.perf_counter()
    reading = COMMAND.read(
        CommandSignalOptions(argv=py("import time; time.sleep(30)")), context(timeout=0.3)
    )
    assert reading.status == "timeout"
    assert time.perf_counter() - started < 3


def test_command_that_cannot_start_is_an_error(context: Callable[..., SourceContext]) -> None:
    reading = COMMAND.read(CommandSignalOptions(argv=["./no-such-program"]), context())
    assert reading.status == "error"
    assert "cannot start" in reading.detail


def test_command_relative_program_and_env(
    tmp_path: Path, context: Callable[..., SourceContext]
) -> None:
    script = tmp_path / "bin" / "errors"
    script.parent.mkdir()
    script.write_text('#!/bin/sh\necho "$RATIO"\n')
    script.chmod(0o755)
    options = CommandSignalOptions.model_validate({"argv": ["bin/errors"], "env": {"RATIO": "0.5"}})
    assert COMMAND.read(options, context(workdir=tmp_path)).value == 0.5


def test_command_options_refuse_a_shell_string() -> None:
    with pytest.raises(ValueError, match="takes a list"):
        CommandSignalOptions.model_validate("curl -s http://x | jq .ratio")
