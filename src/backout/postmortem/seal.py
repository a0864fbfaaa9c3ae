"""The seal a report carries, and ``backout report --check``: read the seal back from a
Markdown, HTML or JSON report and compare it with the store as it is now."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from backout.engine.hooks import journal_hash
from backout.errors import UsageError
from backout.postmortem.model import FORMAT, Seal
from backout.store import audit, repo
from backout.store.db import Store
from backout.store.models import AuditRow, RunRow

MARK = "backout-report-seal"
_COMMENT = re.compile(r"<!--\s*" + MARK + r"\s+(\{[^<>]*?\})\s*-->")


def comment(seal: Seal) -> str:
    """The seal as an HTML comment (Markdown renderers and browsers show nothing)."""
    return f"<!-- {MARK} {json.dumps(seal.to_json(), sort_keys=True)} -->"


def read_seal(path: Path) -> Seal:
    """The seal of the report at ``path``; a UsageError when it is not a backout report."""
    try:
        body = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read it as a text file ({exc})") from exc
    raw = _from_json(body)
    if raw is None:
        found = _COMMENT.search(body)
        raw = _loads(found.group(1)) if found else None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise UsageError(
            f"{path}: not a backout report (no `{MARK}` with format {FORMAT!r} found)",
            hint="give a file written by `backout report RUN` (md, html or json)",
        )
    try:
        return Seal(**{k: raw[k] for k in Seal.__dataclass_fields__})
    except (KeyError, TypeError) as exc:
        raise UsageError(f"{path}: the report's seal is incomplete ({exc})") from exc


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _from_json(body: str) -> Any:
    if not body.lstrip().startswith("{"):
        return None
    document = _loads(body)
    return document.get("seal") if isinstance(document, dict) else None


@dataclass(frozen=True)
class ReportCheck:
    """What ``backout report --check`` found: ``ok`` when the store still matches the seal."""

    path: str
    run_id: str
    ok: bool
    differences: list[str] = field(default_factory=list)
    journal_sha256: str | None = None  # now
    journal_events: int | None = None

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "exit_code": self.exit_code}


def check(store: Store, path: Path) -> ReportCheck:
    seal = read_seal(path)
    with store.session(read_only=True) as session:
        row = session.get(RunRow, seal.run_id)
        if row is None:
            gone = f"run {seal.run_id} is not in this store any more (or this is another store)"
            return ReportCheck(str(path), seal.run_id, False, [gone])
        events = repo.load_events(session, row.id)
        differences = _journal(seal, events)
        differences += _audit(session, seal)
    now = journal_hash(events)
    return ReportCheck(str(path), seal.run_id, not differences, differences, now, len(events))


def _journal(seal: Seal, events: list[Any]) -> list[str]:
    now = journal_hash(events)
    if now == seal.journal_sha256:
        return []
    n, then = len(events), seal.journal_events
    if n > then and journal_hash(events[:then]) == seal.journal_sha256:
        return [
            f"the run went on after the report: the journal has {n} events, the report "
            f"covers the first {then} (those are unchanged); draft the report again"
        ]
    return [
        f"journal rows were edited, added or deleted since the report: its SHA-256 is now "
        f"{now} ({n} events), the report says {seal.journal_sha256} ({then} events)"
    ]


def _audit(session: Any, seal: Seal) -> list[str]:
    if seal.audit_seq is None or seal.audit_hash is None:
        return []
    row = session.scalars(select(AuditRow).where(AuditRow.seq == seal.audit_seq)).first()
    if row is None:
        return [f"audit record {seal.audit_seq}, cited by the report, is gone"]
    if row.hash != seal.audit_hash:
        return [
            f"audit record {seal.audit_seq} has hash {row.hash}; the report cites {seal.audit_hash}"
        ]
    verified = audit.verify(session, against=seal.audit_hash)
    return [] if verified.ok else [f"the audit chain is broken: {verified.problem}"]
