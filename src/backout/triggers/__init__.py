"""Triggers: when to back out, decided from telemetry, alerts or a person."""

from __future__ import annotations

from backout.triggers.kinds import TRIGGERS, Baseline, TriggerKind

__all__ = ["TRIGGERS", "Baseline", "TriggerKind"]
