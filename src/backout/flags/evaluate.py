"""Evaluate a flag for a context, the OpenFeature way: value, variant, reason, error code.

Reasons (https://openfeature.dev/specification/types#resolution-reason):

- ``DISABLED`` — the flag is off: everyone gets the off variant.
- ``STATIC``   — on at 0 % or 100 %: the answer does not depend on who asks.
- ``SPLIT``    — on at 1-99 %: the targeting key's bucket decides.
- ``DEFAULT``  — on at 1-99 % but no targeting key to split on: the off variant; or the
  variant's stored value is one OFREP cannot carry (null, NaN — refused when set since, but
  possibly stored before): the answer then has no ``value``, which tells the app to use its
  code default (OFREP ADR 0006, ``codeDefaultFlag``) rather than ``"value": null``.
- ``ERROR``    — with ``FLAG_NOT_FOUND`` or ``INVALID_CONTEXT``; no value.

A targeting key lands in one of 100 buckets by a hash of flag key and targeting key, so a
user keeps their answer across processes and restarts, each flag splits users on its own,
and raising the percentage only adds users (bucket < percentage is in).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from backout.flags.model import FlagState, value_problem

BUCKETS = 100


class Reason(StrEnum):
    STATIC = "STATIC"
    SPLIT = "SPLIT"
    DISABLED = "DISABLED"
    DEFAULT = "DEFAULT"
    ERROR = "ERROR"


class ErrorCode(StrEnum):
    FLAG_NOT_FOUND = "FLAG_NOT_FOUND"
    INVALID_CONTEXT = "INVALID_CONTEXT"
    PARSE_ERROR = "PARSE_ERROR"


@dataclass(frozen=True)
class Evaluation:
    key: str
    reason: Reason
    value: Any = None
    variant: str | None = None
    error_code: ErrorCode | None = None
    error_details: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    code_default: bool = False  # no value: the app uses the default in its code

    @property
    def ok(self) -> bool:
        return self.error_code is None

    def to_ofrep(self) -> dict[str, Any]:
        """The OFREP body: success (key, value, variant, reason, metadata) or failure."""
        if self.error_code is not None:
            return {
                "key": self.key,
                "errorCode": self.error_code.value,
                "errorDetails": self.error_details,
            }
        value = {} if self.code_default else {"value": self.value}
        return {
            "key": self.key,
            **value,
            "variant": self.variant,
            "reason": self.reason.value,
            "metadata": self.metadata,
        }


def bucket(flag_key: str, targeting_key: str) -> int:
    """0-99, stable for a (flag, targeting key) pair on every machine and Python version."""
    digest = hashlib.sha256(f"{flag_key}\x00{targeting_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def targeting_key_of(context: Mapping[str, Any]) -> str | None:
    """The context's ``targetingKey``; an empty one counts as none."""
    value = context.get("targetingKey")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError(f"targetingKey must be a string, not {type(value).__name__}")
    return value


def evaluate(key: str, flag: FlagState | None, context: Mapping[str, Any]) -> Evaluation:
    if flag is None:
        return Evaluation(
            key,
            Reason.ERROR,
            error_code=ErrorCode.FLAG_NOT_FOUND,
            error_details=f"flag {key!r} does not exist",
        )
    try:
        targeting_key = targeting_key_of(context)
    except TypeError as exc:
        return Evaluation(
            key, Reason.ERROR, error_code=ErrorCode.INVALID_CONTEXT, error_details=str(exc)
        )
    reason, on = _decide(flag, targeting_key)
    variant = flag.on_variant if on else flag.off_variant
    value = flag.variants[variant]
    unservable = value_problem(value) is not None
    return Evaluation(
        key,
        Reason.DEFAULT if unservable else reason,
        value=None if unservable else value,
        variant=variant,
        metadata={"version": flag.version, "percentage": flag.percentage},
        code_default=unservable,
    )


def _decide(flag: FlagState, targeting_key: str | None) -> tuple[Reason, bool]:
    """(reason, whether the on variant is served)."""
    if not flag.enabled:
        return Reason.DISABLED, False
    if flag.percentage in (0, BUCKETS):
        return Reason.STATIC, flag.percentage == BUCKETS
    if targeting_key is None:
        return Reason.DEFAULT, False
    return Reason.SPLIT, bucket(flag.key, targeting_key) < flag.percentage
