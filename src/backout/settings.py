"""Settings shared by every command: where the store is and who is acting."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field

from backout.store.dialect import DEFAULT_URL


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"


@dataclass(frozen=True)
class Settings:
    database_url: str = field(
        default_factory=lambda: os.environ.get("BACKOUT_DATABASE_URL") or DEFAULT_URL
    )
    actor: str = field(default_factory=lambda: os.environ.get("BACKOUT_ACTOR") or _default_actor())
    lease_ttl: float = 15.0  # seconds; the heartbeat renews every ttl/3
