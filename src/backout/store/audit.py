"""The tamper-evident audit chain.

Each record links to the one before: ``hash = sha256(prev_hash || canonical_json(record))``
where the record is ``{seq, at, actor, action, subject, details}``. Editing, deleting,
inserting or reordering any record breaks a link that :func:`verify` names. Appends take
a lock first (a transaction-level advisory lock on PostgreSQL; SQLite's single writer), so
concurrent writers extend the chain one after another and it never forks.

Details are stored exactly as they were hashed (a JSON round trip first: a tuple becomes a
list, an int key a string key), and values under secret-looking keys or inside URLs with
credentials are masked before they are written.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, insert, select, text
from sqlalchemy.orm import Session

from backout.redact import MASK
from backout.store.models import AuditRow

GENESIS = "0" * 64
_HASH = re.compile(r"[0-9a-f]{64}")
_LOCK_KEY = 7244302
_LOCKED = "backout_audit_locked"  # session.info: (transaction, True) once it holds the lock
_APPENDED = "backout_audit_appended"  # session.info: (transaction, the link it appended last)
_SECRET_KEY = re.compile(r"passw|secret|token|api[_-]?key|authorization|credential", re.I)
_URL_CREDENTIALS = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]+:)[^\s@/]+@", re.I)
_AUDIT: Table = AuditRow.__table__  # type: ignore[assignment]
# built once (each is on the path from an alert to its backout): SQLAlchemy reuses their
# compiled forms without building them again
_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
_LAST_LINK = select(_AUDIT.c.seq, _AUDIT.c.hash).order_by(_AUDIT.c.seq.desc()).limit(1)
_APPEND = insert(_AUDIT).returning(_AUDIT.c.id)


def canonical_json(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def is_hash(text: str) -> bool:
    """Whether ``text`` is spelled like a link hash (64 lowercase hex digits)."""
    return _HASH.fullmatch(text) is not None


def link_hash(prev_hash: str, record: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_json(record)).encode()).hexdigest()


def record_of(row: Any) -> dict[str, Any]:
    """The hashed part of a record (an AuditRow, or a plain row of the table)."""
    return {
        "seq": row.seq,
        "at": row.at,
        "actor": row.actor,
        "action": row.action,
        "subject": row.subject,
        "details": row.details,
    }


def _mask(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _mask(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(item, key) for item in value]
    if isinstance(value, str):
        return MASK if value and _SECRET_KEY.search(key) else _URL_CREDENTIALS.sub(r"\1***@", value)
    return value


def clean_details(details: dict[str, Any] | None) -> dict[str, Any]:
    """What is stored and hashed: plain JSON (so a re-read record hashes the same), with
    secrets masked. Known secret values are redacted earlier, by the run's redactor."""
    plain = json.loads(json.dumps(details or {}, default=str))
    return _mask(plain)  # type: ignore[no-any-return]


def lock(session: Session) -> None:
    """Take the chain's append lock until the transaction ends (re-entrant). On PostgreSQL a
    transaction-level advisory lock; SQLite's ``BEGIN IMMEDIATE`` already holds the only
    write lock. Code that locks rows it will audit takes this first, so every transaction
    takes the two in the same order and two writers never deadlock."""
    if session.get_bind().dialect.name != "postgresql":
        return
    if _remembered(session, _LOCKED):
        return  # held since earlier in this transaction: no second round trip
    session.connection().execute(_LOCK, {"key": _LOCK_KEY})
    _remember(session, _LOCKED, True)


def _remembered(session: Session, key: str) -> Any:
    """What :func:`_remember` kept under ``key`` in this very transaction, or None. The
    innermost one: what a savepoint did is forgotten with it, rolled back or not (at
    worst a round trip made again)."""
    kept = session.info.get(key)
    return kept[1] if kept is not None and kept[0] is _innermost(session) else None


def _remember(session: Session, key: str, value: Any) -> None:
    session.info[key] = (_innermost(session), value)


def _innermost(session: Session) -> Any:
    return session.get_nested_transaction() or session.get_transaction()


def head(session: Session) -> AuditRow | None:
    return session.scalars(select(AuditRow).order_by(AuditRow.seq.desc()).limit(1)).first()


def last_link(session: Session) -> tuple[int, str] | None:
    """The newest record's (seq, hash): all an append needs, read without the ORM."""
    found = session.connection().execute(_LAST_LINK).first()
    return (int(found[0]), str(found[1])) if found is not None else None


def append(
    session: Session, actor: str, action: str, subject: str, details: dict[str, Any] | None = None
) -> AuditRow:
    """Add a record in the caller's transaction (so it commits with the mutation it audits).
    A second record in one transaction follows the first without reading the chain again:
    the lock held since the first means no one else appended in between."""
    lock(session)
    last: tuple[int, str] | None = _remembered(session, _APPENDED) or last_link(session)
    record = {
        "seq": (last[0] + 1) if last else 1,
        "at": time.time(),
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": clean_details(details),
    }
    prev = last[1] if last else GENESIS
    values = {**record, "prev_hash": prev, "hash": link_hash(prev, record)}
    # one plain INSERT (no unit of work): it is on the path from an alert to the backout
    inserted = session.connection().execute(_APPEND, values)
    row_id = inserted.scalar_one()
    _remember(session, _APPENDED, (values["seq"], values["hash"]))
    return AuditRow(id=row_id, **values)  # a copy of the row, not tracked


@dataclass(frozen=True)
class Verification:
    ok: bool
    records: int
    head_hash: str
    bad_seq: int | None = None
    problem: str = ""

    @property
    def exit_code(self) -> int:
        """0 for an intact chain, 1 naming the first broken link."""
        return 0 if self.ok else 1


def _rows(session: Session, since: int = 0) -> Iterator[Any]:
    """The records after ``since``, in chain order, as plain rows (no ORM objects: a walk of
    the whole chain takes half the time)."""
    query = select(_AUDIT).order_by(_AUDIT.c.seq, _AUDIT.c.id).execution_options(yield_per=500)
    if since:
        query = query.where(_AUDIT.c.seq > since)
    yield from session.connection().execute(query)


def _stored_hash(session: Session, seq: int) -> str | None:
    query = select(_AUDIT.c.hash).where(_AUDIT.c.seq == seq).order_by(_AUDIT.c.id).limit(1)
    found = session.connection().execute(query).first()
    return str(found[0]) if found is not None else None


def verify(session: Session, against: str | None = None, *, since: int = 0) -> Verification:
    """Walk the whole chain; report the first broken link. ``against``: a checkpoint hash
    that must still be a link of this chain.

    ``since``: walk only the records after record ``since``, the first linked to the hash
    record ``since`` has stored (a prefix verified earlier: the records before it are not
    read, so an edit of one of them goes unseen; a rewrite that recomputed the hashes
    onwards changes every later hash, which ``against`` — a later record's hash verified
    earlier — catches). ``records`` still counts the whole chain; ``against`` may also be
    record ``since``'s own hash."""
    against = against.strip().lower() if against is not None else None
    prev, expected_seq, count = GENESIS, 1, 0
    if since > 0:
        stored = _stored_hash(session, since)
        if stored is None:
            problem = f"record {since} is missing (deleted): the chain was verified through it"
            return Verification(False, since - 1, "", since, problem)
        prev, expected_seq, count = stored, since + 1, since
    seen_anchor = against is None or against == prev  # GENESIS: an empty log's checkpoint
    for row in _rows(session, since):
        problem = _check_link(row, prev, expected_seq)
        if problem:
            # a deleted record is named by the seq that is missing, not by its successor
            bad = expected_seq if row.seq > expected_seq else row.seq
            return Verification(False, count, prev, bad, problem)
        seen_anchor = seen_anchor or row.hash == against
        prev, expected_seq, count = row.hash, row.seq + 1, count + 1
    if not seen_anchor:
        return Verification(
            False,
            count,
            prev,
            None,
            f"checkpoint {against} is not in this chain: the log was rewritten "
            "or truncated since it was taken",
        )
    return Verification(True, count, prev)


def _check_link(row: Any, prev: str, expected_seq: int) -> str:
    if row.seq != expected_seq:
        if row.seq > expected_seq:
            where = (
                f"the chain jumps from {expected_seq - 1} to {row.seq}"
                if expected_seq > 1
                else f"the chain starts at {row.seq}"
            )
            return f"record {expected_seq} is missing (deleted); {where}"
        return f"record {row.seq} appears twice or out of order"
    if row.prev_hash != prev:
        return (
            f"record {row.seq} does not follow record {row.seq - 1}: prev_hash differs "
            "(a record was inserted, deleted or reordered before it)"
        )
    if link_hash(prev, record_of(row)) != row.hash:
        return f"record {row.seq} was edited or forged: its content no longer matches its hash"
    return ""


def log(
    session: Session,
    action: str | None = None,
    subject: str | None = None,
    actor: str | None = None,
    since: float | None = None,
    limit: int = 100,
    before: int | None = None,
    after: int | None = None,
) -> list[AuditRow]:
    """The newest ``limit`` records that match, oldest first; a page of a long trail by its
    keys: ``before`` (records older than that seq) or ``after`` (the oldest ``limit`` newer
    than it), each one index range read however deep the page."""
    order = AuditRow.seq.asc() if after is not None else AuditRow.seq.desc()
    query = select(AuditRow).order_by(order).limit(limit)
    if before is not None:
        query = query.where(AuditRow.seq < before)
    if after is not None:
        query = query.where(AuditRow.seq > after)
    if action:
        query = query.where(AuditRow.action.startswith(action, autoescape=True))
    if subject:
        query = query.where(AuditRow.subject == subject)
    if actor:
        query = query.where(AuditRow.actor == actor)
    if since is not None:
        query = query.where(AuditRow.at >= since)
    rows = list(session.scalars(query))
    return rows if after is not None else rows[::-1]
