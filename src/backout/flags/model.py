"""A flag's state and a requested change to it.

A flag has named variants (``{on: true, off: false}`` unless told otherwise). Enabled, a
``percentage`` of targeting keys get ``on_variant`` and the rest ``off_variant``; disabled,
everyone gets ``off_variant`` — so turning a flag off is always the kill switch.

A variant's value is what apps receive over OFREP, whose value types are boolean, string,
number and object: ``null`` fits none of them, and NaN or Infinity are not JSON at all, so
a change holding either is refused (:func:`value_problem`).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from backout.errors import UsageError

KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")
DEFAULT_VARIANTS: dict[str, Any] = {"on": True, "off": False}
CHANGEABLE = ("enabled", "percentage", "variants", "on_variant", "off_variant")
RESTORING = "restoring"  # validation context key: a reverse puts back what was stored


def value_problem(value: Any) -> str | None:
    """Why apps could not be served ``value`` over OFREP, or None when they can."""
    if value is None:
        return "is null, which no OFREP value type allows"
    if _non_finite(value):
        return "holds NaN or Infinity, which JSON cannot carry"
    return None


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(item) for item in value.values())
    if isinstance(value, list):
        return any(_non_finite(item) for item in value)
    return False


def check_key(key: str) -> str:
    if not KEY.match(key):
        raise UsageError(
            f"{key!r} is not a flag key",
            hint="start with a letter or digit; then letters, digits, _ . : - (at most 200)",
        )
    return key


@dataclass(frozen=True)
class FlagState:
    key: str
    enabled: bool = False
    percentage: int = 100
    variants: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_VARIANTS))
    on_variant: str = "on"
    off_variant: str = "off"
    version: int = 0
    updated_at: float = 0.0
    updated_by: str = ""

    def settings(self) -> dict[str, Any]:
        """What a change can set (and a reverse restores)."""
        return {name: getattr(self, name) for name in CHANGEABLE}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class FlagChange(BaseModel):
    """Fields to change; ``None`` keeps the current value (or the default for a new flag)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool | None = Field(None, description="On (true) or off (false: the kill switch).")
    percentage: int | None = Field(
        None, ge=0, le=100, description="Share of targeting keys that get the on variant."
    )
    variants: dict[str, Any] | None = Field(
        None, description="Variant names and their values (default {on: true, off: false})."
    )
    on_variant: str | None = Field(None, description="Variant served when on (default 'on').")
    off_variant: str | None = Field(
        None, description="Variant served when off or outside the percentage (default 'off')."
    )

    @field_validator("variants")
    @classmethod
    def _variant_names(
        cls, value: dict[str, Any] | None, info: ValidationInfo
    ) -> dict[str, Any] | None:
        if value is not None and not value:
            raise ValueError("give at least one variant")
        restoring = bool(info.context and info.context.get(RESTORING))
        for name, served in (value or {}).items():
            if not name or len(name) > 100:
                raise ValueError(f"variant name {name!r}: 1 to 100 characters")
            if not restoring and (problem := value_problem(served)):
                raise ValueError(
                    f"variant {name!r} {problem}; give true/false, a number, text or an object"
                )
        return value

    @model_validator(mode="after")
    def _something_to_change(self) -> FlagChange:
        if all(getattr(self, name) is None for name in CHANGEABLE):
            raise ValueError("nothing to change: give enabled, percentage or variants")
        return self

    def applied_to(self, state: FlagState) -> FlagState:
        """The state after this change; a variant name that does not exist is an error."""
        changes = {name: value for name in CHANGEABLE if (value := getattr(self, name)) is not None}
        new = replace(state, **changes)
        for role in ("on_variant", "off_variant"):
            name = getattr(new, role)
            if name not in new.variants:
                raise UsageError(
                    f"flag {state.key}: {role} {name!r} is not one of its variants "
                    f"({', '.join(new.variants)})",
                    hint=f"name an existing variant with {role}, or add it to variants",
                )
        return new

    @classmethod
    def restoring(cls, state: FlagState | None) -> FlagChange:
        """The change back to ``state``; a flag that did not exist is turned off.

        A value stored before null and NaN were refused is put back as it was (apps get the
        code default for it); everything else is validated as for any change.
        """
        if state is None:
            return cls(enabled=False)
        return cls.model_validate(state.settings(), context={RESTORING: True})
