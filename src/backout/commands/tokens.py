"""API tokens: make one for an actor and a role, list them, revoke one, and tell who a
request is from its token.

A token is ``bo_`` and 40 URL-safe random characters (240 bits). It is shown once, when
it is made; the store keeps its SHA-256 (a lookup through a unique index, so checking a
token costs one indexed read) and its first characters, for people to tell tokens apart.
Making and revoking a token are audited, with its actor, role, id and first characters,
never the token itself.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time

from backout.commands.caller import Caller
from backout.errors import Conflict, NotFound, Unauthenticated, UsageError
from backout.kernel.durations import MAX_SECONDS
from backout.kernel.roles import Principal, Role, role_of
from backout.reports import CreatedToken, TokenSummary
from backout.store import audit, tokens
from backout.store.tokens import TokenRow

PREFIX = "bo_"
SHOWN = 10  # the characters kept in the clear: "bo_" and 7 of the random part
TOUCH_EVERY = 60.0  # seconds: a token's last use is written at most this often
_SECRET = re.compile(r"bo_[A-Za-z0-9_-]{40}")
_MAX_TEXT = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_REFUSED = "token refused: it is unknown, revoked or expired"
_REFUSED_HINT = (
    "ask an admin for a new token (`backout token create`); `backout token list` shows "
    "each token's status"
)


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(30)  # 30 bytes: 40 characters, no padding


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    caller: Caller, role: Role | str, actor: str, expires_s: float | None, name: str = ""
) -> CreatedToken:
    """Make a token that acts as ``actor`` with ``role``, valid for ``expires_s`` seconds
    (None: until revoked). The result holds the token itself, which is never shown again."""
    granted = role_of(role)
    holder = _text(actor, "actor", 'who requests made with the token act as, e.g. "ci-deploy"')
    label = _text(name, "name", "a label such as the pipeline or person it is for", empty=True)
    if expires_s is not None and not 0 < expires_s < MAX_SECONDS:
        raise UsageError(
            f"a token's lifetime must be over 0s and under {MAX_SECONDS:.0f}s, not {expires_s:g}s",
            hint="e.g. 30d, 12h; or never",
        )
    secret, now = new_secret(), time.time()
    with caller.store.session() as session:
        row = tokens.add(
            session,
            TokenRow(
                name=label,
                actor=holder,
                role=granted.value,
                secret_hash=hash_secret(secret),
                prefix=secret[:SHOWN],
                created_at=now,
                created_by=caller.actor,
                expires_at=None if expires_s is None else now + expires_s,
            ),
        )
        audit.append(session, caller.actor, "token.created", f"token:{row.id}", _facts(row))
        return CreatedToken(
            row.id,
            secret,
            row.name,
            row.actor,
            row.role,
            row.prefix,
            row.created_at,
            row.created_by,
            row.expires_at,
        )


def list_tokens(caller: Caller) -> list[TokenSummary]:
    """Every token, newest first, with its status now; never a secret or a hash."""
    now = time.time()
    with caller.store.session(read_only=True) as session:
        return [_summary(row, now) for row in tokens.tokens(session)]


def revoke_token(caller: Caller, token_id: int, reason: str) -> TokenSummary:
    """Revoke a token for ``reason``: from now on it is refused. Refused for a token that
    was revoked already (its first revocation stands)."""
    why = reason.strip()
    if not why:
        raise UsageError(
            "revoking a token needs a reason",
            hint='say why with --reason "…" (it is kept with the token and in the audit trail)',
        )
    with caller.store.session() as session:
        audit.lock(session)  # before the row's lock, as every audited writer takes them
        row = tokens.get(session, token_id, for_update=True)
        if row is None:
            raise NotFound(f"no token #{token_id}", hint="`backout token list` shows them")
        if row.revoked_at is not None:
            raise Conflict(
                f"token #{token_id} ({row.prefix}…) was already revoked by {row.revoked_by}: "
                f"{row.revoke_reason}",
                hint="nothing to do: it is refused already",
            )
        now = time.time()
        tokens.revoke(session, row, caller.actor, why, now)
        facts = {**_facts(row), "reason": why}
        audit.append(session, caller.actor, "token.revoked", f"token:{row.id}", facts)
        return _summary(row, now)


def authenticate(caller: Caller, secret: str) -> Principal:
    """Who a request presenting ``secret`` is. Refused with
    :class:`~backout.errors.Unauthenticated` (one message for every case, the case in
    its ``reason``) when the token is missing, malformed, unknown, revoked or expired.
    The token's last use is written at most once a minute, not at every request."""
    text = secret.strip()
    if not text:
        raise Unauthenticated("no token given", reason="missing", hint=_REFUSED_HINT)
    if not _SECRET.fullmatch(text):
        raise Unauthenticated(_REFUSED, reason="malformed", hint=_REFUSED_HINT)
    now = time.time()
    with caller.store.session(read_only=True) as session:
        row = tokens.by_hash(session, hash_secret(text))
    status = "unknown" if row is None else _status(row, now)
    if row is None or status != "active":
        raise Unauthenticated(_REFUSED, reason=status, hint=_REFUSED_HINT)
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
        with caller.store.session() as session:
            tokens.touch(session, row.id, now, TOUCH_EVERY)
    return Principal(row.actor, Role(row.role), row.id)


def _text(value: str, field: str, what: str, *, empty: bool = False) -> str:
    text = value.strip()
    if not text and not empty:
        raise UsageError(f"a token needs an {field}", hint=f"give {what}")
    if len(text) > _MAX_TEXT or _CONTROL.search(text):
        raise UsageError(
            f"a token's {field} must be one line of at most {_MAX_TEXT} characters",
            hint=f"give {what}",
        )
    return text


def _status(row: TokenRow, now: float) -> str:
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


def _facts(row: TokenRow) -> dict[str, object]:
    """What the audit trail keeps of a token (its id is in the record's subject too)."""
    return {
        "id": row.id,
        "actor": row.actor,
        "role": row.role,
        "prefix": row.prefix,
        "name": row.name,
        "expires_at": row.expires_at,
    }


def _summary(row: TokenRow, now: float) -> TokenSummary:
    return TokenSummary(
        id=row.id,
        name=row.name,
        actor=row.actor,
        role=row.role,
        prefix=row.prefix,
        status=_status(row, now),
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
        revoke_reason=row.revoke_reason,
    )
