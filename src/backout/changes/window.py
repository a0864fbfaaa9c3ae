"""Change windows: ``START..END`` in ISO 8601 (UTC unless an offset is given). END may be a
time alone (``2026-12-01T22:00..23:30``): it is then on START's day, in START's offset."""

from __future__ import annotations

import datetime as dt

from backout.errors import UsageError

HINT = "use ISO 8601, e.g. 2026-12-01T22:00 or 2026-12-01T22:00+01:00"


def _moment(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{text!r} is not a date and time", hint=HINT) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def parse_instant(text: str) -> float:
    return _moment(text).timestamp()


def _end(text: str, start: dt.datetime) -> dt.datetime:
    try:
        clock = dt.time.fromisoformat(text.strip())
    except ValueError:
        return _moment(text)  # a full date and time
    return dt.datetime.combine(start.date(), clock, tzinfo=clock.tzinfo or start.tzinfo)


def parse_window(text: str) -> tuple[float, float]:
    start_text, sep, end_text = text.partition("..")
    if not sep:
        raise UsageError(
            f"window {text!r} needs START..END",
            hint="e.g. --window 2026-12-01T22:00..2026-12-01T23:30 (or ..23:30 the same day)",
        )
    start = _moment(start_text)
    start_at, end_at = start.timestamp(), _end(end_text, start).timestamp()
    if end_at <= start_at:
        raise UsageError(f"window {text!r} ends before it starts")
    return start_at, end_at


def iso(at: float | None) -> str:
    if at is None:
        return "-"
    return dt.datetime.fromtimestamp(at, tz=dt.UTC).isoformat(timespec="minutes")
