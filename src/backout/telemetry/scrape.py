"""``scrape``: read a ``/metrics`` endpoint (Prometheus text format) directly.

Two modes. ``metric:`` reads one metric, summed (or ``aggregate``d) over the series its
``match`` selects: a gauge as it is, a counter as a per-second rate. ``ratio:`` divides
the increase of a numerator counter by the increase of a denominator counter over the
interval (5xx responses over all responses) and reports the two increases as
``events``/``trials``, which is what a sequential test needs.

Counters: a series whose value went down restarted from zero (a process restart), so its
increase is its new value; a series that was not there before was created since (client
libraries create labelled series lazily, on the first 5xx), so all of it counts.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from backout.kernel.options import Options
from backout.telemetry._http import Failure, get
from backout.telemetry.base import Reading, Sampler, SignalSource, SourceContext

if TYPE_CHECKING:
    import httpx

SeriesKey = tuple[str, frozenset[tuple[str, str]]]
AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "sum": sum,
    "max": max,
    "min": min,
    "mean": lambda values: sum(values) / len(values),
}


def _regexes_compile(cls: type, value: dict[str, str]) -> dict[str, str]:
    for label, pattern in value.items():
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"match.{label}: {pattern!r} is not a regex: {exc}") from exc
    return value


class Selector(Options):
    """A metric name and label matchers; each matcher is a regular expression that must
    match the whole label value, as PromQL's ``=~`` does (``{code: "5.."}``)."""

    metric: str = Field(description="Sample name, e.g. http_requests_total.")
    match: dict[str, str] = Field(default_factory=dict, description="Label: regex.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"metric": value} if isinstance(value, str) else value

    _regexes = field_validator("match")(_regexes_compile)

    def text(self) -> str:
        labels = ",".join(f'{label}=~"{pattern}"' for label, pattern in self.match.items())
        return f"{self.metric}{{{labels}}}" if labels else self.metric


class Ratio(Options):
    numerator: Selector = Field(description="Counter of the events (e.g. 5xx responses).")
    denominator: Selector = Field(description="Counter of all trials (e.g. all responses).")


class ScrapeOptions(Options):
    url: str = Field(description="The /metrics URL.")
    headers: dict[str, str] = Field(default_factory=dict)
    metric: str | None = Field(None, description="One metric (value mode).")
    match: dict[str, str] = Field(default_factory=dict, description="Label: regex.")
    mode: Literal["auto", "gauge", "rate"] = Field(
        "auto", description="auto: counters as a per-second rate, anything else as it is."
    )
    aggregate: Literal["sum", "max", "min", "mean"] = Field(
        "sum", description="How to combine the series that match."
    )
    ratio: Ratio | None = Field(None, description="Increase of numerator / of denominator.")

    _regexes = field_validator("match")(_regexes_compile)

    @model_validator(mode="after")
    def _one_mode(self) -> ScrapeOptions:
        if (self.metric is None) == (self.ratio is None):
            raise ValueError("give either metric: (one value) or ratio: (numerator/denominator)")
        return self

    @property
    def selector(self) -> Selector:
        return Selector(metric=self.metric or "", match=self.match)


@dataclass(frozen=True)
class Series:
    value: float
    counter: bool


@dataclass(frozen=True)
class Scrape:
    at: float
    series: dict[SeriesKey, Series]


def parse(text: str) -> dict[SeriesKey, Series]:
    """Every sample of an exposition, keyed by name and labels. A counter ``foo`` is also
    found under its family name (the parser calls its samples ``foo_total``)."""
    from prometheus_client.parser import text_string_to_metric_families

    series: dict[SeriesKey, Series] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue  # a creation timestamp, not a count
            labels = frozenset((str(k), str(v)) for k, v in sample.labels.items())
            entry = Series(float(sample.value), _is_counter(family.type, sample.name))
            series[(sample.name, labels)] = entry
            if family.type == "counter" and sample.name == family.name + "_total":
                series.setdefault((family.name, labels), entry)
    return series


def _is_counter(family_type: str, sample_name: str) -> bool:
    # A summary's quantiles are gauges; its _sum and _count, like a histogram's, only grow.
    if family_type in ("histogram", "summary"):
        return sample_name.endswith(("_bucket", "_sum", "_count"))
    return family_type == "counter"


def select(series: dict[SeriesKey, Series], selector: Selector) -> dict[SeriesKey, Series]:
    patterns = {label: re.compile(pattern) for label, pattern in selector.match.items()}
    return {
        key: entry
        for key, entry in series.items()
        if key[0] == selector.metric and _labels_match(dict(key[1]), patterns)
    }


def _labels_match(labels: dict[str, str], patterns: dict[str, re.Pattern[str]]) -> bool:
    # A missing label is the empty string, as in PromQL.
    return all(pattern.fullmatch(labels.get(name, "")) for name, pattern in patterns.items())


def increase(before: dict[SeriesKey, Series], after: dict[SeriesKey, Series]) -> float:
    """How much the selected counters went up, series by series, across resets."""
    total = 0.0
    for key, entry in after.items():
        previous = before.get(key)
        if previous is None or entry.value < previous.value:
            total += entry.value  # created since, or restarted from zero
        else:
            total += entry.value - previous.value
    return total


def scraped(url: str, response: httpx.Response | Failure, at: float) -> Scrape | Failure:
    """A scrape from a GET's outcome: every series, or why there are none."""
    if isinstance(response, Failure):
        return response
    if response.status_code >= 400:
        return Failure("error", f"GET {url}: status {response.status_code}")
    try:
        series = parse(response.text)
    except (ValueError, TypeError, IndexError) as exc:
        return Failure("error", f"GET {url}: not Prometheus text format: {exc}")
    return Scrape(at, series)


class ScrapeSampler:
    """Keeps the previous scrape so counters can become rates and ratios of increases."""

    def __init__(
        self, options: ScrapeOptions, ctx: SourceContext, first: Scrape | Failure | None = None
    ) -> None:
        """Scrapes once now, unless given that ``first`` scrape (a shared target's)."""
        self.options = options
        self.ctx = ctx
        first = self._scrape() if first is None else first
        self.previous = first if isinstance(first, Scrape) else None

    @property
    def needs_two_scrapes(self) -> bool:
        if self.options.ratio is not None or self.options.mode == "rate":
            return True
        if self.options.mode == "gauge" or self.previous is None:
            return False
        chosen = select(self.previous.series, self.options.selector).values()
        return any(entry.counter for entry in chosen)

    def read(self) -> Reading:
        return self.reading_from(self._scrape())

    def reading_from(self, current: Scrape | Failure) -> Reading:
        """The reading a new scrape gives (this sampler's or a shared target's)."""
        if isinstance(current, Failure):
            return Reading.missing(self.ctx.clock(), current.status, current.detail)
        previous, self.previous = self.previous, current
        if self.options.ratio is not None:
            return self._ratio(self.options.ratio, previous, current)
        return self._value(previous, current)

    def _scrape(self) -> Scrape | Failure:
        response = get(self.options.url, timeout=self.ctx.timeout, headers=self.options.headers)
        return scraped(self.options.url, response, self.ctx.clock())

    def _value(self, previous: Scrape | None, current: Scrape) -> Reading:
        selector = self.options.selector
        chosen = select(current.series, selector)
        where = f"{selector.text()} at {self.options.url}"
        if not chosen:
            return Reading.missing(current.at, "no_data", _nothing_matched(current, selector))
        as_rate = self.options.mode == "rate" or (
            self.options.mode == "auto" and any(entry.counter for entry in chosen.values())
        )
        if not as_rate:
            values = [entry.value for entry in chosen.values()]
            return Reading.number(current.at, AGGREGATES[self.options.aggregate](values), where)
        seconds = current.at - previous.at if previous is not None else 0.0
        if previous is None or seconds <= 0:
            return Reading.missing(current.at, "no_data", f"{where}: first scrape, no rate yet")
        grown = increase(select(previous.series, selector), chosen)
        reading = Reading.number(
            current.at, grown / seconds, f"rate of {where} over {seconds:.3g}s"
        )
        return _with_counts(reading, events=round(grown), trials=None)

    def _ratio(self, ratio: Ratio, previous: Scrape | None, current: Scrape) -> Reading:
        where = f"{ratio.numerator.text()} / {ratio.denominator.text()} at {self.options.url}"
        denominator = select(current.series, ratio.denominator)
        if not denominator:
            detail = _nothing_matched(current, ratio.denominator)
            return Reading.missing(current.at, "no_data", detail)
        if previous is None:
            return Reading.missing(current.at, "no_data", f"{where}: first scrape, no increase yet")
        seconds = current.at - previous.at
        trials = increase(select(previous.series, ratio.denominator), denominator)
        # No numerator series yet just means no event yet (no 5xx so far).
        events = increase(
            select(previous.series, ratio.numerator), select(current.series, ratio.numerator)
        )
        detail = f"{where}: {events:g} of {trials:g} over {seconds:.3g}s"
        if trials <= 0:
            missing = Reading.missing(current.at, "no_data", f"{detail} (no traffic)")
            return _with_counts(missing, events=0, trials=0)
        reading = Reading.number(current.at, events / trials, detail)
        return _with_counts(reading, events=round(events), trials=round(trials))


def _with_counts(reading: Reading, *, events: int, trials: int | None) -> Reading:
    return replace(reading, events=events, trials=trials)


def _nothing_matched(scrape: Scrape, selector: Selector) -> str:
    detail = f"no series matches {selector.text()}"
    names = {name for name, _ in scrape.series}
    if selector.metric in names:
        return detail + " (the metric exists: check the label matchers)"
    close = sorted(name for name in names if name.startswith(selector.metric))[:3]
    return detail + (f"; did you mean {', '.join(close)}?" if close else "")


class ScrapeSource(SignalSource):
    kind = "scrape"
    Options = ScrapeOptions
    default_interval = 1.0

    def open(self, options: ScrapeOptions, ctx: SourceContext) -> Sampler:
        """Scrapes once now, so the first :meth:`ScrapeSampler.read` already has a rate."""
        return ScrapeSampler(options, ctx)

    def read(self, options: ScrapeOptions, ctx: SourceContext) -> Reading:
        sampler = ScrapeSampler(options, ctx)
        if sampler.needs_two_scrapes:
            time.sleep(ctx.interval)
        return sampler.read()

    def describe(self, options: ScrapeOptions) -> str:
        if options.ratio is not None:
            what = (
                f"increase of {options.ratio.numerator.text()} / {options.ratio.denominator.text()}"
            )
        else:
            what = f"{options.aggregate} of {options.selector.text()} ({options.mode})"
        return f"{what} scraped from {options.url}"
