"""What a telemetry source is, and what it reports.

A *signal* is one named entry of a plan's ``telemetry:`` block: a source kind (``scrape``,
``prometheus``, ``http_probe``, ``command``) with its options. The engine reads a signal
every ``interval`` and hands each :class:`Reading` to the signal's detectors.

Stateful sources: turning a Prometheus counter into a rate needs the previous scrape, so
a source is *opened* once per signal and the returned :class:`Sampler` keeps that state::

    sampler = SOURCES.get("scrape").open(options, ctx)   # first scrape happens here
    reading = sampler.read()                              # one reading per interval

Stateless sources (``prometheus``, ``http_probe``, ``command``) implement
:meth:`SignalSource.read` and get a sampler for free. ``SignalSource.read(options, ctx)``
is a one-shot reading for every kind (a baseline snapshot, ``--dry-run``); for a counter
rate it scrapes twice, ``ctx.interval`` apart.

A sampler never raises for what the world does (timeouts, refused connections, empty
results, garbage output): that is a reading with ``status`` ``timeout``, ``error`` or
``no_data`` and a ``detail`` saying why, so a trigger's ``on_no_data`` policy decides.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel

Status = Literal["ok", "no_data", "timeout", "error"]


@dataclass(frozen=True)
class Reading:
    """One observation of a signal: a number, counts, raw samples, or why there is none.

    ``value`` is gauge-like (a rate, a ratio, a latency). ``events``/``trials`` are the
    counts behind a ratio in this interval (errors and requests from counter deltas);
    sequential tests need them, a ratio alone hides how much evidence it carries.
    ``samples`` are raw observations in this interval (probe latencies) for the judge.
    """

    at: float
    status: Status
    value: float | None = None
    events: int | None = None
    trials: int | None = None
    samples: tuple[float, ...] = ()
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def missing(cls, at: float, status: Status, detail: str) -> Reading:
        return cls(at=at, status=status, detail=detail)

    @classmethod
    def number(cls, at: float, value: float, detail: str) -> Reading:
        """A plain number; NaN is Prometheus' way of saying 0/0, so it is ``no_data``."""
        if math.isnan(value):
            return cls.missing(at, "no_data", f"{detail}: the value is NaN (no traffic?)")
        return cls(at=at, status="ok", value=value, detail=detail)


@dataclass(frozen=True)
class SourceContext:
    """What a source may use: its time budget per read, where relative paths start, and
    the signal's interval (a one-shot counter rate waits that long between two scrapes)."""

    timeout: float = 5.0
    interval: float = 1.0
    workdir: Path = field(default_factory=Path.cwd)
    env: Mapping[str, str] = field(default_factory=dict)
    redact: Callable[[str], str] = str
    clock: Callable[[], float] = time.time


class Sampler(Protocol):
    def read(self) -> Reading: ...


class SignalSource(ABC):
    """A ``telemetry:`` kind. ``default_interval`` is how often the engine reads it when
    the plan does not say."""

    kind: ClassVar[str]
    Options: ClassVar[type[BaseModel]]
    default_interval: ClassVar[float] = 1.0

    def open(self, options: Any, ctx: SourceContext) -> Sampler:
        """A sampler for one signal; stateless kinds just call :meth:`read` each time."""
        return _Stateless(self, options, ctx)

    @abstractmethod
    def read(self, options: Any, ctx: SourceContext) -> Reading:
        """One reading, within ``ctx.timeout``; never raises for timeouts or no data."""

    @abstractmethod
    def describe(self, options: Any) -> str:
        """One line for runbooks and ``backout explain``: what is queried, where."""


@dataclass(frozen=True)
class _Stateless:
    source: SignalSource
    options: Any
    ctx: SourceContext

    def read(self) -> Reading:
        return self.source.read(self.options, self.ctx)


def pool(readings: Iterable[Reading]) -> Reading:
    """Several readings as one (a baseline snapshot over a few intervals): counts and
    samples add up, the value is the ratio of the summed counts when there are counts and
    the mean of the values otherwise. ``no_data`` when none of them was ``ok``."""
    listed = list(readings)
    good = [reading for reading in listed if reading.ok]
    if not good:
        last = max((reading.at for reading in listed), default=0.0)
        return Reading.missing(last, "no_data", f"none of {len(listed)} readings was ok")
    events = _sum_counts(reading.events for reading in good)
    trials = _sum_counts(reading.trials for reading in good)
    values = [reading.value for reading in good if reading.value is not None]
    value = events / trials if events is not None and trials else _mean(values)
    return Reading(
        at=good[-1].at,
        status="ok" if value is not None else "no_data",
        value=value,
        events=events,
        trials=trials,
        samples=tuple(sample for reading in good for sample in reading.samples),
        detail=f"{len(good)} readings pooled; last: {good[-1].detail}",
    )


def _sum_counts(counts: Iterable[int | None]) -> int | None:
    listed = list(counts)
    return None if any(count is None for count in listed) else sum(c or 0 for c in listed)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
