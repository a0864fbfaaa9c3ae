"""Change windows: ``START..END`` in ISO 8601 (UTC unless an offset is given)."""

from __future__ import annotations

import datetime as dt

from backout.errors import UsageError


def parse_instant(text: str) -> float:
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"{text!r} is not a date and time",
            hint="use ISO 8601, e.g. 2026-12-01T22:00 or 2026-12-01T22:00+01:00",
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def parse_window(text: str) -> tuple[float, float]:
    start_text, sep, end_text = text.partition("..")
    if not sep:
        raise UsageError(
            f"window {text!r} needs START..END",
            hint="e.g. --window 2026-12-01T22:00..2026-12-01T23:30",
        )
    start, end = parse_instant(start_text), parse_instant(end_text)
    if end <= start:
        raise UsageError(f"window {text!r} ends before it starts")
    return start, end


def iso(at: float | None) -> str:
    if at is None:
        return "-"
    return dt.datetime.fromtimestamp(at, tz=dt.UTC).isoformat(timespec="minutes")
