"""Runs a page at a time, newest first, by keyset: a page ends with the (created_at, id)
of its last run, and the next page starts strictly after it, so a run created or finished
between two pages never shifts one onto the next, and a deep page costs what the first does
(the ``runs.created_at`` index, read backwards from the cursor).

The cursor is opaque to clients: URL-safe base64 of that key.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, or_, select

from backout.commands.caller import Caller
from backout.errors import UsageError
from backout.kernel.states import RunStatus
from backout.metrics.window import parse_bound
from backout.reports import RunSummary
from backout.store.models import RunRow

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MODES = ("backout", "deploy", "watch", "rehearsal")
_BAD_CURSOR_HINT = "pass the next_cursor of the previous page as it is, or no cursor"


@dataclass(frozen=True)
class Filters:
    service: str | None = None
    status: str | None = None
    mode: str | None = None
    since: float | None = None  # epoch seconds

    @classmethod
    def parse(
        cls, service: str | None, status: str | None, mode: str | None, since: str | None
    ) -> Filters:
        """The filters as a query string gives them; a bad one is a UsageError (400)."""
        if status is not None and status not in {s.value for s in RunStatus}:
            raise UsageError(
                f"no run status is called {status!r}",
                hint="one of: " + ", ".join(s.value for s in RunStatus),
            )
        if mode is not None and mode not in MODES:
            raise UsageError(f"no run mode is called {mode!r}", hint="one of: " + ", ".join(MODES))
        moment = None if since is None else parse_bound(since, time.time(), "since")
        return cls(service or None, status, mode, moment)


@dataclass(frozen=True)
class Page:
    runs: list[RunSummary]
    next_cursor: str | None

    def to_json(self) -> dict[str, Any]:
        return {"runs": [run.to_json() for run in self.runs], "next_cursor": self.next_cursor}


def encode_cursor(created_at: float, run_id: str) -> str:
    raw = json.dumps([created_at, run_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, run_id = json.loads(raw)
        if isinstance(created_at, int | float) and isinstance(run_id, str):
            return float(created_at), run_id
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        pass
    raise UsageError("the cursor is not one this server gave", hint=_BAD_CURSOR_HINT)


def page_query(filters: Filters, limit: int, after: tuple[float, str] | None) -> Select[Any]:
    """Newest first by (created_at, id); one more row than the page, to tell if it is last."""
    query = select(RunRow).order_by(RunRow.created_at.desc(), RunRow.id.desc()).limit(limit + 1)
    if filters.service:
        query = query.where(RunRow.service == filters.service)
    if filters.status:
        query = query.where(RunRow.status == filters.status)
    if filters.mode:
        query = query.where(RunRow.mode == filters.mode)
    if filters.since is not None:
        query = query.where(RunRow.created_at >= filters.since)
    if after is not None:
        created_at, run_id = after
        # a range on created_at (what the index serves), then the tie on the id
        query = query.where(
            RunRow.created_at <= created_at,
            or_(RunRow.created_at < created_at, RunRow.id < run_id),
        )
    return query


def list_runs(
    caller: Caller, filters: Filters, limit: int = DEFAULT_LIMIT, cursor: str | None = None
) -> Page:
    if not 1 <= limit <= MAX_LIMIT:
        raise UsageError(f"limit must be 1 to {MAX_LIMIT}, not {limit}")
    after = decode_cursor(cursor) if cursor else None
    with caller.store.session(read_only=True) as session:
        rows = list(session.scalars(page_query(filters, limit, after)))
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more else None
    following = encode_cursor(last.created_at, last.id) if last is not None else None
    return Page([RunSummary.of(row) for row in rows], following)
