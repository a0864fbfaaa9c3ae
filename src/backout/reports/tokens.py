"""API tokens as the verbs return them: a new token with its secret (shown once), and a
token as it is listed (never with its secret or its hash)."""

from __future__ import annotations

from dataclasses import dataclass

from backout.reports.base import _Record


@dataclass(frozen=True)
class TokenSummary(_Record):
    """One token (``backout token list``, ``token revoke``); ``status`` is ``active``,
    ``expired`` or ``revoked`` at the time it was listed."""

    id: int
    name: str
    actor: str  # who a request with this token acts as
    role: str  # viewer | operator | approver | admin
    prefix: str  # the token's first characters, to tell tokens apart
    status: str
    created_at: float
    created_by: str
    expires_at: float | None  # null: never
    last_used_at: float | None  # recorded at most once a minute
    revoked_at: float | None
    revoked_by: str | None
    revoke_reason: str | None


@dataclass(frozen=True)
class CreatedToken(_Record):
    """A token just made (``backout token create``): ``secret`` is the token itself, shown
    this once; the store keeps only its SHA-256."""

    id: int
    secret: str
    name: str
    actor: str
    role: str
    prefix: str
    created_at: float
    created_by: str
    expires_at: float | None
