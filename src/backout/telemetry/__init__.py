"""Telemetry: sources that read a signal, and detectors that decide on its readings.

Sources are the ``telemetry:`` kinds (``scrape``, ``prometheus``, ``http_probe``,
``command``); more come from the ``backout.telemetry`` entry point group. Detectors (in
:mod:`backout.telemetry.detectors`) are the ``triggers:`` rules.
"""

from __future__ import annotations

from backout.plugins import Registry
from backout.telemetry.base import Reading, Sampler, SignalSource, SourceContext, Status, pool
from backout.telemetry.command import CommandSignal
from backout.telemetry.http_probe import HttpProbeSource
from backout.telemetry.prometheus import PrometheusSource
from backout.telemetry.scrape import ScrapeSource

SOURCES: Registry[SignalSource] = Registry("telemetry source", group="backout.telemetry")
for _source in (ScrapeSource(), PrometheusSource(), HttpProbeSource(), CommandSignal()):
    SOURCES.register(_source)

__all__ = ["SOURCES", "Reading", "Sampler", "SignalSource", "SourceContext", "Status", "pool"]
