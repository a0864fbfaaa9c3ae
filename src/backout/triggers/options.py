"""Options of each trigger kind, as written under ``triggers:`` in a plan."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator

from backout.kernel.options import Options
from backout.spec.models import Duration


def parse_fraction(value: object) -> float:
    """``50%`` → 0.5; a bare number is a fraction already (0.5)."""
    if isinstance(value, bool):
        raise ValueError("expected a percentage like 20% or a fraction like 0.2")
    text = str(value).strip()
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a percentage like 20% or a fraction like 0.2") from None
    if number < 0:
        raise ValueError("must not be negative")
    return number


Fraction = Annotated[
    float,
    BeforeValidator(parse_fraction),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\d+(\.\d+)?%$"},
                {"type": "number", "minimum": 0},
            ]
        }
    ),
]


class ThresholdOptions(Options):
    above: float | None = Field(None, description="Back out when the value is above this.")
    below: float | None = Field(None, description="Back out when the value is below this.")
    for_s: Duration = Field(0.0, alias="for", description="…for this long without a break.")

    @model_validator(mode="after")
    def _one_side(self) -> ThresholdOptions:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of `above:` or `below:`")
        return self


class RelativeOptions(Options):
    worse_by: Fraction = Field(description="How much worse than the baseline, e.g. 50%.")
    direction: Literal["up", "down"] = Field("up", description="up: higher is worse.")
    for_s: Duration = Field(0.0, alias="for", description="Sustained this long.")
    min_change: float = Field(0.0, ge=0, description="Ignore absolute changes smaller than this.")


class SequentialOptions(Options):
    baseline_rate: Fraction | None = Field(
        None, description="Normal error ratio; default: the one recorded by `backout snapshot`."
    )
    tolerance: Fraction = Field(0.2, description="Allowed rise above the baseline, e.g. 20%.")
    alpha: float = Field(0.01, gt=0, lt=0.5, description="False-alarm bound (anytime-valid).")
    latency_quantile: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Test latency instead: share of samples above this "
        "baseline quantile (e.g. 0.99).",
    )
    baseline_latency: float | None = Field(
        None, gt=0, description="That quantile's value; default: from the snapshot's samples."
    )
    restart_every: Duration = Field(
        10.0, description="How often a fresh test starts, so a late regression is caught fast."
    )


class JudgeOptions(Options):
    baseline: str = Field(description="Signal with the stable release's samples.")
    canary: str = Field(description="Signal with the canary's samples.")
    tolerance: Fraction = Field(0.1, description="Allowed relative shift, e.g. 10%.")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="Significance of the Mann-Whitney test.")
    min_samples: int = Field(50, ge=5, description="Samples each side before judging.")
    direction: Literal["up", "down"] = Field("up", description="up: higher is worse.")
    window: Duration | None = Field(None, description="Judge only the last this-long of samples.")
    every: Duration = Field(
        0.0, description="Judge at most this often (each look is a fresh chance of a false alarm)."
    )


class AlertmanagerOptions(Options):
    match: dict[str, str] = Field(default_factory=dict, description="Labels that must be equal.")
    match_re: dict[str, str] = Field(
        default_factory=dict, description="Labels that must match these regular expressions."
    )


class ManualOptions(Options):
    @model_validator(mode="before")
    @classmethod
    def _empty(cls, value: Any) -> Any:
        return {} if value in (None, True) else value
