"""Settings shared by every command: where the store is and who is acting."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field

from backout.errors import UsageError
from backout.store.dialect import DEFAULT_URL

DEFAULT_LEASE_TTL = 15.0  # seconds a lease lives without a heartbeat


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"


def _float_env(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{name}={text!r} is not a number of seconds") from None
    if value <= 0:
        raise UsageError(f"{name} must be positive")
    return value


@dataclass(frozen=True)
class Settings:
    database_url: str = field(
        default_factory=lambda: os.environ.get("BACKOUT_DATABASE_URL") or DEFAULT_URL
    )
    actor: str = field(default_factory=lambda: os.environ.get("BACKOUT_ACTOR") or _default_actor())
    # seconds a lease lives without a heartbeat; renewed every ttl/3
    lease_ttl: float = field(
        default_factory=lambda: _float_env("BACKOUT_LEASE_TTL", DEFAULT_LEASE_TTL)
    )
