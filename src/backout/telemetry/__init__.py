"""Telemetry: sources that read a signal, and detectors that decide on its readings.

Sources are the ``telemetry:`` kinds (``scrape``, ``prometheus``, ``http_probe``,
``command``); more come from the ``backout.telemetry`` entry point group. Detectors (in
:mod:`backout.telemetry.detectors`) are the ``triggers:`` rules.
"""

from __future__ import annotations

from backout.plugins import Registry
from backout.telemetry.base import Reading, Sampler, SignalSource, SourceContext, Status, pool

SOURCES: Registry[SignalSource] = Registry(
    "telemetry source",
    group="backout.telemetry",
    builtins={
        "scrape": "backout.telemetry.scrape:ScrapeSource",
        "prometheus": "backout.telemetry.prometheus:PrometheusSource",
        "http_probe": "backout.telemetry.http_probe:HttpProbeSource",
        "command": "backout.telemetry.command:CommandSignal",
    },  # each module loads when a plan first uses its kind
)

__all__ = ["SOURCES", "Reading", "Sampler", "SignalSource", "SourceContext", "Status", "pool"]
