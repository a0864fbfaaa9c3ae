"""The window the figures cover: ``--since`` and ``--until`` as people write them.

A bound is a span back from now (``30d``, ``2w``, ``12h``, ``90m``), a date
(``2026-11-01``, midnight UTC) or a date and time (``2026-11-01T12:00``, UTC unless it
names its offset: ``2026-11-01T12:00+02:00``). ``--since all`` is the whole store.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from backout.errors import UsageError

DAY = 86400.0
DEFAULT_SINCE = "30d"
_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(w|d|h|m)\s*$")
_UNITS = {"w": 7 * DAY, "d": DAY, "h": 3600.0, "m": 60.0}
_FORMS = "a span like 30d, 2w, 12h or 90m, a date like 2026-11-01, or 2026-11-01T12:00Z"


@dataclass(frozen=True)
class Window:
    """Runs created at or after ``since`` (None: the first run ever) and before ``until``;
    the journal is read as it stood at ``until``."""

    since: float | None
    until: float

    @property
    def days(self) -> float | None:
        return None if self.since is None else (self.until - self.since) / DAY

    def to_json(self) -> dict[str, object]:
        return {"since": iso(self.since), "until": iso(self.until), "days": self.days}


def iso(at: float | None) -> str | None:
    """``2026-11-30T16:00:00Z``: the form every output uses for a moment."""
    if at is None:
        return None
    return dt.datetime.fromtimestamp(at, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_bound(text: str, now: float, option: str) -> float:
    """One bound as epoch seconds; UsageError naming the option and the accepted forms."""
    span = _SPAN.match(text)
    if span:
        return now - float(span.group(1)) * _UNITS[span.group(2)]
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a time", hint=f"give {_FORMS}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def window_of(since: str | None, until: str | None, now: float) -> Window:
    """The window ``--since``/``--until`` name (``since`` None: the last 30 days;
    ``all``: the whole store)."""
    end = now if until is None else parse_bound(until, now, "--until")
    if since is not None and since.strip().lower() == "all":
        return Window(None, end)
    start = parse_bound(since or DEFAULT_SINCE, now, "--since")
    if start >= end:
        raise UsageError(
            f"the window is empty: --since {iso(start)} is not before --until {iso(end)}",
            hint="--since names the start, --until the end (default: now)",
        )
    return Window(start, end)
