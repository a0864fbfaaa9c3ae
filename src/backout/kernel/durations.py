"""Durations as written in plans: ``500ms``, ``10s``, ``2m``, ``1h``, or a number of seconds."""

from __future__ import annotations

import math
import re

_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
MAX_SECONDS = 1e9  # about 30 years: longer is a typo, and larger floats lose precision
_FACTORS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Return seconds; raise ``ValueError`` with the accepted forms on anything else."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 500ms, 10s, 2m or 1h")
    if isinstance(value, int | float):
        seconds = _seconds(value)
    else:
        match = _PATTERN.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration; expected a number with ms, s, m or h")
        seconds = float(match.group(1)) * _FACTORS[match.group(2)]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if not seconds < MAX_SECONDS:  # also NaN: every wait in a plan must end
        raise ValueError(f"a duration must be under {MAX_SECONDS:.0f}s (about 30 years)")
    return seconds


def _seconds(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer of hundreds of digits; refused as too long
        return math.inf if value > 0 else -math.inf


def format_duration(seconds: float) -> str:
    """The shortest plan-style spelling of ``seconds``."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    for unit, factor in (("h", 3600), ("m", 60)):
        if seconds >= factor and seconds % factor == 0:
            return f"{int(seconds // factor)}{unit}"
    return f"{seconds:g}s"
