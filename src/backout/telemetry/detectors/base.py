"""What every trigger returns: a verdict with the evidence behind it, in plain words."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from backout.telemetry.base import Reading

Verdict = Literal["pass", "marginal", "fail", "no_data", "warming_up"]


@dataclass(frozen=True)
class Decision:
    """One evaluation. ``fail`` means back out; ``marginal`` means not yet (a breach not
    held long enough, evidence still building); ``no_data`` leaves it to ``on_no_data``.

    ``evidence`` is JSON-serializable (it is journaled and printed by ``backout explain``);
    ``summary`` is one plain sentence about it.
    """

    verdict: Verdict
    statistic: float | None
    threshold: float | None
    evidence: dict[str, Any] = field(default_factory=dict)
    summary: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Detector(Protocol):
    def update(self, reading: Reading) -> Decision:
        """Take the next reading of the signal; say what it means now."""
        ...


def no_data(reading: Reading, signal: str, consequence: str = "") -> Decision:
    """The decision for a reading that carries no number (timeout, error, empty result)."""
    text = f"no data for {signal} ({reading.status}): {reading.detail}"
    return Decision(
        verdict="no_data",
        statistic=None,
        threshold=None,
        evidence={"status": reading.status, "at": reading.at, "source": reading.detail},
        summary=f"{text}; {consequence}" if consequence else text,
    )


def fmt(value: float) -> str:
    """Numbers in summaries: short, and not in scientific notation for everyday values."""
    return f"{value:.4g}"
