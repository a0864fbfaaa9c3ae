"""``prometheus``: a PromQL query against a Prometheus server's HTTP API.

An instant query (``/api/v1/query``) must return one number: a scalar or a vector of one
series (aggregate with ``sum()`` or select one series otherwise). With ``range:`` it is a
range query (``/api/v1/query_range``) over the last ``range`` at ``step``: every point of
every series becomes a sample (for the judge), and the value is their mean.

An empty result is ``no_data``; Prometheus' own error answers keep their message, and its
``timeout`` error type is a ``timeout`` reading, like a server that does not answer.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import Field

from backout.kernel.durations import format_duration
from backout.kernel.options import Options
from backout.spec.models import Duration
from backout.telemetry._http import Failure, get
from backout.telemetry.base import Reading, SignalSource, SourceContext, Status

if TYPE_CHECKING:
    import httpx

DEFAULT_STEP = 15.0  # a common scrape interval; a finer step repeats points, see step


class PrometheusOptions(Options):
    url: str = Field(description="Base URL of the Prometheus server, e.g. http://127.0.0.1:9090.")
    query: str = Field(description="PromQL expression.")
    range: Duration | None = Field(None, description="Run a range query over this long.")
    step: Duration = Field(
        DEFAULT_STEP,
        gt=0,
        description="Range query resolution; keep it at least the scrape interval, or the "
        "same scrape is counted several times and the judge becomes overconfident.",
    )
    headers: dict[str, str] = Field(default_factory=dict)


def endpoint(options: PrometheusOptions) -> str:
    """The API URL the query goes to (instant or range)."""
    path = "query_range" if options.range else "query"
    return f"{options.url.rstrip('/')}/api/v1/{path}"


def where(options: PrometheusOptions) -> str:
    """How readings name the query: the expression and its server."""
    return f"{options.query!r} at {options.url}"


def params(options: PrometheusOptions, ctx: SourceContext) -> dict[str, str]:
    """The query's parameters now (a range query ends at this moment)."""
    params = {"query": options.query, "timeout": f"{ctx.timeout:g}s"}
    if options.range:
        end = ctx.clock()
        params.update(
            start=f"{end - options.range:.3f}", end=f"{end:.3f}", step=f"{options.step:g}"
        )
    return params


def interpret(body: Any, at: float, where: str) -> Reading:
    """A reading from the API's JSON answer (``{"status": ..., "data": ...}``)."""
    if not isinstance(body, dict) or "status" not in body:
        return Reading.missing(at, "error", f"{where}: not a Prometheus API answer")
    if body["status"] != "success":
        kind = str(body.get("errorType", "error"))
        status: Status = "timeout" if kind == "timeout" else "error"
        return Reading.missing(at, status, f"{where}: {kind}: {body.get('error', '')}")
    data = body["data"]
    result_type, result = data["resultType"], data["result"]
    if result_type == "scalar":
        return Reading.number(at, float(result[1]), where)
    if result_type == "vector":
        return _vector(result, at, where)
    if result_type == "matrix":
        return _matrix(result, at, where)
    return Reading.missing(at, "error", f"{where}: a {result_type} result is not a number")


def _vector(result: list[dict[str, Any]], at: float, where: str) -> Reading:
    if not result:
        return Reading.missing(at, "no_data", f"{where}: the query returned no series")
    if len(result) > 1:
        labels = ", ".join(str(series.get("metric", {})) for series in result[:3])
        return Reading.missing(
            at,
            "error",
            f"{where}: {len(result)} series ({labels}…); wrap the query in sum() or "
            "select one series so it yields one number",
        )
    return Reading.number(at, float(result[0]["value"][1]), where)


def _matrix(result: list[dict[str, Any]], at: float, where: str) -> Reading:
    points = [float(value) for series in result for _, value in series.get("values", [])]
    samples = tuple(point for point in points if not math.isnan(point))
    if not samples:
        return Reading.missing(at, "no_data", f"{where}: the range query returned no points")
    counted = "1 point" if len(samples) == 1 else f"{len(samples)} points"
    detail = f"{where}: {counted} from {len(result)} series"
    return Reading(
        at=at, status="ok", value=sum(samples) / len(samples), samples=samples, detail=detail
    )


class PrometheusSource(SignalSource):
    kind = "prometheus"
    Options = PrometheusOptions
    default_interval = DEFAULT_STEP

    def read(self, options: PrometheusOptions, ctx: SourceContext) -> Reading:
        response = get(
            endpoint(options),
            timeout=ctx.timeout,
            headers=options.headers,
            params=params(options, ctx),
        )
        return answer(response, ctx.clock(), where(options))

    def describe(self, options: PrometheusOptions) -> str:
        span = f" over the last {format_duration(options.range)}" if options.range else ""
        return f"PromQL {options.query!r}{span} at {options.url}"


def answer(response: httpx.Response | Failure, at: float, where: str) -> Reading:
    """The reading an API answer (or the failure to get one) gives."""
    if isinstance(response, Failure):
        return Reading.missing(at, response.status, response.detail)
    try:
        body = response.json()
    except ValueError:
        snippet = response.text.strip()[:200]
        return Reading.missing(at, "error", f"{where}: status {response.status_code}: {snippet}")
    try:
        return interpret(body, at, where)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        return Reading.missing(at, "error", f"{where}: unexpected answer shape: {exc!r}")
