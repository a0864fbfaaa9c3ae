"""``http_probe``: request a URL a few times per reading; report failures and latency.

Each reading sends ``samples`` requests one after the other, all within the read's time
budget (``ctx.timeout``; requests that no longer fit are not sent). A request fails when
its status is not ``status`` or it gets no answer. ``events``/``trials`` are failures and
requests sent, ``samples`` the latencies (a timed-out request counts with the time it
waited: users waited that long too), and ``value`` is what ``measure`` asks for.

When no request got any answer at all the reading is ``error`` (or ``timeout``), not a
100% failure ratio: a probe cannot tell a dead service from a broken path to it, so the
trigger's ``on_no_data`` decides (``backout`` if a dead service must back out).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from pydantic import Field, model_validator

from backout.kernel.options import Options
from backout.telemetry._http import client
from backout.telemetry.base import Reading, SignalSource, SourceContext, Status


class HttpProbeOptions(Options):
    url: str = Field(description="URL to request.")
    method: str = Field("GET", description="HTTP method.")
    headers: dict[str, str] = Field(default_factory=dict)
    status: int = Field(200, ge=100, le=599, description="The status that means success.")
    samples: int = Field(5, ge=1, le=1000, description="Requests per reading.")
    measure: Literal["errors", "latency_p99", "latency_mean"] = Field(
        "errors", description="errors: failure ratio; latency_*: seconds."
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: object) -> object:
        return {"url": value} if isinstance(value, str) else value


@dataclass
class Tally:
    sent: int = 0
    failed: int = 0
    answered: int = 0
    timed_out: int = 0
    latencies: list[float] = field(default_factory=list)
    last_error: str = ""


def probe(options: HttpProbeOptions, budget: float) -> Tally:
    tally = Tally()
    deadline = time.perf_counter() + budget
    for _ in range(options.samples):
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            break
        _one(options, remaining, tally)
    return tally


def _one(options: HttpProbeOptions, timeout: float, tally: Tally) -> None:
    import httpx

    tally.sent += 1
    started = time.perf_counter()
    try:
        response = client().request(
            options.method, options.url, headers=options.headers, timeout=timeout
        )
    except httpx.TimeoutException:
        tally.failed += 1
        tally.timed_out += 1
        tally.latencies.append(time.perf_counter() - started)
        tally.last_error = f"no answer within {timeout:.3g}s"
        return
    except httpx.HTTPError as exc:
        tally.failed += 1
        tally.last_error = f"{type(exc).__name__}: {exc}"
        return
    tally.answered += 1
    tally.latencies.append(time.perf_counter() - started)
    if response.status_code != options.status:
        tally.failed += 1
        tally.last_error = f"status {response.status_code}"


def reading_from(tally: Tally, options: HttpProbeOptions, at: float) -> Reading:
    where = f"{options.method} {options.url} x{tally.sent}"
    if tally.answered == 0:
        status: Status = "timeout" if tally.timed_out == tally.sent else "error"
        detail = f"{where}: no answer to any request ({tally.last_error or 'none sent'})"
        return Reading(at=at, status=status, events=tally.failed, trials=tally.sent, detail=detail)
    import numpy as np  # here, not at import: the CLI starts without numpy

    latencies = np.asarray(tally.latencies)
    value = {
        "errors": tally.failed / tally.sent,
        "latency_p99": float(np.percentile(latencies, 99)),
        "latency_mean": float(latencies.mean()),
    }[options.measure]
    failures = f", last failure: {tally.last_error}" if tally.failed else ""
    return Reading(
        at=at,
        status="ok",
        value=value,
        events=tally.failed,
        trials=tally.sent,
        samples=tuple(tally.latencies),
        detail=f"{where}: {tally.failed} failed{failures}",
    )


class HttpProbeSource(SignalSource):
    kind = "http_probe"
    Options = HttpProbeOptions
    default_interval = 1.0

    def read(self, options: HttpProbeOptions, ctx: SourceContext) -> Reading:
        tally = probe(options, ctx.timeout)
        return reading_from(tally, options, ctx.clock())

    def describe(self, options: HttpProbeOptions) -> str:
        what = {"errors": "failure ratio", "latency_p99": "p99 latency"}.get(
            options.measure, "mean latency"
        )
        return (
            f"{what} of {options.samples} * {options.method} {options.url} "
            f"(success is status {options.status})"
        )
