"""Trigger kinds: each turns its options (and the snapshot's baseline) into a detector.

``alertmanager`` and ``manual`` have no detector: they fire from the trigger inbox, which
the webhook listener and `backout trigger` write to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

import backout.triggers.options as o
from backout.errors import UsageError
from backout.plugins import Registry
from backout.telemetry.base import Reading

if TYPE_CHECKING:
    from backout.telemetry.detectors.base import Detector

# Detectors load when a trigger is built (the sequential test and the judge import scipy,
# about a second and tens of MiB: only plans that use them pay for it).


@dataclass(frozen=True)
class Baseline:
    """What `backout snapshot` recorded of each signal (pooled readings)."""

    readings: dict[str, Reading] = field(default_factory=dict)

    def of(self, signal: str, trigger: str) -> Reading:
        reading = self.readings.get(signal)
        if reading is None or not reading.ok:
            raise UsageError(
                f"trigger {trigger!r} compares with the baseline of signal {signal!r}, but the "
                "latest snapshot has no data for it",
                hint="run `backout snapshot PLAN` while the good release takes traffic",
            )
        return reading


class TriggerKind:
    kind: ClassVar[str]
    Options: ClassVar[type[BaseModel]]
    needs_signal: ClassVar[bool] = True

    def build(self, options: Any, name: str, signal: str, baseline: Baseline) -> Detector | None:
        return None


class ThresholdKind(TriggerKind):
    kind = "threshold"
    Options = o.ThresholdOptions

    def build(
        self, options: o.ThresholdOptions, name: str, signal: str, baseline: Baseline
    ) -> Detector:
        from backout.telemetry.detectors import Threshold

        return Threshold(
            above=options.above, below=options.below, for_s=options.for_s, signal=signal
        )


class RelativeKind(TriggerKind):
    kind = "relative"
    Options = o.RelativeOptions

    def build(
        self, options: o.RelativeOptions, name: str, signal: str, baseline: Baseline
    ) -> Detector:
        from backout.telemetry.detectors import Relative

        value = baseline.of(signal, name).value
        assert value is not None  # an ok reading has a value
        return Relative(
            value,
            worse_by=options.worse_by,
            direction=options.direction,
            for_s=options.for_s,
            min_change=options.min_change,
            signal=signal,
        )


class SequentialKind(TriggerKind):
    kind = "sequential"
    Options = o.SequentialOptions

    def build(
        self, options: o.SequentialOptions, name: str, signal: str, baseline: Baseline
    ) -> Detector:
        from backout.telemetry.detectors import Sequential

        common: dict[str, Any] = {
            "tolerance": options.tolerance,
            "alpha": options.alpha,
            "signal": signal,
            "restart_every": options.restart_every,
        }
        if options.latency_quantile is not None:
            return self._latency(options, name, signal, baseline, common)
        if options.baseline_rate is not None:
            return Sequential(options.baseline_rate, **common)
        reading = baseline.of(signal, name)
        if reading.events is None or not reading.trials:
            raise UsageError(
                f"trigger {name!r}: signal {signal!r} gives no counts to learn a "
                "baseline rate from",
                hint="set `baseline_rate:` or use a `scrape:` signal in `ratio` mode",
            )
        return Sequential.from_baseline(reading.events, reading.trials, **common)

    @staticmethod
    def _latency(
        options: o.SequentialOptions,
        name: str,
        signal: str,
        baseline: Baseline,
        common: dict[str, Any],
    ) -> Detector:
        from backout.telemetry.detectors import Sequential

        quantile = options.latency_quantile or 0.99
        if options.baseline_latency is not None:
            return Sequential.latency(options.baseline_latency, quantile=quantile, **common)
        samples = baseline.of(signal, name).samples
        if not samples:
            raise UsageError(
                f"trigger {name!r}: the snapshot of {signal!r} has no latency samples",
                hint="set `baseline_latency:` or snapshot an `http_probe` signal",
            )
        return Sequential.latency_from_baseline(samples, quantile=quantile, **common)


class JudgeKind(TriggerKind):
    kind = "judge"
    Options = o.JudgeOptions
    needs_signal = False

    def build(
        self, options: o.JudgeOptions, name: str, signal: str, baseline: Baseline
    ) -> Detector:
        from backout.telemetry.detectors import MannWhitneyJudge

        return MannWhitneyJudge(
            tolerance=options.tolerance,
            alpha=options.alpha,
            min_samples=options.min_samples,
            direction=options.direction,
            window=options.window,
            every=options.every,
            signal=options.canary,
        )


class AlertmanagerKind(TriggerKind):
    kind = "alertmanager"
    Options = o.AlertmanagerOptions
    needs_signal = False


class ManualKind(TriggerKind):
    kind = "manual"
    Options = o.ManualOptions
    needs_signal = False


TRIGGERS: Registry[TriggerKind] = Registry("trigger")
for _kind in (
    ThresholdKind(),
    RelativeKind(),
    SequentialKind(),
    JudgeKind(),
    AlertmanagerKind(),
    ManualKind(),
):
    TRIGGERS.register(_kind)
