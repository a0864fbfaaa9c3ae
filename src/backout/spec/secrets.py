"""Secret values, read from where the plan says they come from (an environment variable or
a file), when they are needed and never stored."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from backout.errors import UsageError
from backout.spec.models import Plan, Secret


def resolve_secrets(plan: Plan, base_dir: Path) -> dict[str, str]:
    """Read every declared secret; a missing one is a usage error before anything runs."""
    return read_secrets(plan.secrets, base_dir)


def read_secrets(secrets: Mapping[str, Secret], base_dir: Path) -> dict[str, str]:
    """The values of ``secrets`` (name -> where it comes from); a file path is relative to
    ``base_dir``. A missing one is a :class:`~backout.errors.UsageError` naming it."""
    values: dict[str, str] = {}
    for name, secret in secrets.items():
        if secret.env:
            if secret.env not in os.environ:
                raise UsageError(
                    f"secret {name!r}: environment variable {secret.env} is not set",
                    hint=f"export {secret.env}=... before running",
                )
            values[name] = os.environ[secret.env]
        elif secret.file:
            path = Path(secret.file) if Path(secret.file).is_absolute() else base_dir / secret.file
            try:
                values[name] = path.read_text().strip()
            except OSError as exc:
                raise UsageError(f"secret {name!r}: cannot read {path}: {exc.strerror}") from exc
        else:
            raise UsageError(f"secret {name!r} names no source", hint="give `env:` or `file:`")
    return values
