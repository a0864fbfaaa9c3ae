"""What every plan model is built on: closed, immutable models, the duration type, names,
risk levels, the defaults the engine relies on, and the kinded entry (one kind key plus
common fields)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from backout.kernel.durations import parse_duration

DURATION_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"},
        {"type": "number", "minimum": 0},
    ],
    "description": "A duration: 500ms, 10s, 2m, 1h, or a number of seconds.",
}
Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(DURATION_SCHEMA)]
Risk = Literal["low", "medium", "high", "critical"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

DEFAULT_STEP_TIMEOUT = 60.0
DEFAULT_CHECK_TIMEOUT = 10.0
MAX_RETRY_DELAY = 30.0  # the engine caps the doubling retry backoff here


class Model(BaseModel):
    """Base for plan models: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Kinded(Model):
    """A mapping with exactly one *kind* key (``run:``, ``http:`` …) plus common fields.

    The loader moves the kind key into ``kind`` and its value into ``options`` before
    validation, so the models stay closed (``extra="forbid"``) and errors stay precise.
    """

    kind: str = Field(description="Which action, check or source this is (the key used in YAML).")
    options: Any = Field(description="The kind's own options, validated by its registry.")
