"""Policy files (``backout-policy.yaml``): validate them like plans, with the same loader the
deploy gate uses, so a file that passes here is the file the gate reads."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from backout.changes.policy import DEFAULT_POLICY_FILE, load_policy, looks_like_policy
from backout.errors import Issue, PlanError, UsageError

__all__ = ["looks_like_policy", "policy_file_in_effect", "validate_policy"]


def validate_policy(paths: Sequence[str | Path]) -> dict[str, list[Issue]]:
    """Issues per policy file (none when it is valid), each pinned to FILE:LINE:COL."""
    results: dict[str, list[Issue]] = {}
    for path in paths:
        try:
            load_policy(path)
        except PlanError as exc:
            results[os.fspath(path)] = exc.issues
            continue
        results[os.fspath(path)] = []
    return results


def policy_file_in_effect() -> str:
    """The policy file the gate reads when none is named (``--policy``, ``BACKOUT_POLICY``):
    ``./backout-policy.yaml``; an error when there is none (the built-in default, which
    needs no validating, applies then)."""
    if Path(DEFAULT_POLICY_FILE).exists():
        return DEFAULT_POLICY_FILE
    raise UsageError(
        f"no policy file to validate: there is no ./{DEFAULT_POLICY_FILE} and BACKOUT_POLICY "
        "is not set (the built-in default applies)",
        hint="name the file: `backout policy validate FILE`",
    )
