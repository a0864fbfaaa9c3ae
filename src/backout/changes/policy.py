"""The change policy: per risk level, what a change needs before it may start.

Read from ``backout-policy.yaml`` (``--policy`` or ``BACKOUT_POLICY``); without a file the
built-in default below applies. Errors carry file, line and column like plan errors.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field

from backout.errors import PlanError
from backout.spec.models import Duration, Model
from backout.spec.yamlfile import load_model, read_text, read_yaml

DEFAULT_POLICY_FILE = "backout-policy.yaml"
RISK_LEVELS = ("low", "medium", "high", "critical")
_PLAN_KEY = re.compile(r"^plan[ \t]*:", re.MULTILINE)  # a plan's `plan: NAME`, at the top


class Rehearsal(Model):
    max_age: Duration = Field(30 * 86400.0, description="A passing rehearsal no older than this.")
    fits_rto: bool = Field(True, description="Its measured duration must fit the plan's rto.")
    environment: str | None = Field(
        None, description="Only drills in this environment count (e.g. staging)."
    )


class Requirements(Model):
    lint_clean: bool = Field(True, description="The plan loads with no lint errors.")
    lint_strict: bool = Field(False, description="No lint warnings either.")
    verify: bool = Field(False, description="The plan has `verify:` checks.")
    rto: bool = Field(False, description="The plan has an `rto:`.")
    approvals: int = Field(0, ge=0, le=10, description="Approvals from roles.approvers.")
    window: bool = Field(False, description="The change must start inside its window.")
    rehearsal: Rehearsal | None = Field(None, description="A passing rehearsal is required.")
    preflight: bool = Field(
        False,
        description="A plan with migration steps (alembic, sql_migration) needs a passing "
        "`backout preflight` of its version: up, down, up on a throwaway database.",
    )


class Policy(Model):
    low: Requirements = Field(default_factory=lambda: Requirements())
    medium: Requirements = Field(
        default_factory=lambda: Requirements(verify=True, rto=True, approvals=1)
    )
    high: Requirements = Field(
        default_factory=lambda: Requirements(
            verify=True, rto=True, approvals=1, window=True, rehearsal=Rehearsal()
        )
    )
    critical: Requirements = Field(
        default_factory=lambda: Requirements(
            lint_strict=True,
            verify=True,
            rto=True,
            approvals=2,
            window=True,
            rehearsal=Rehearsal(max_age=7 * 86400.0),
        )
    )

    def for_risk(self, risk: str) -> Requirements:
        return getattr(self, risk)  # type: ignore[no-any-return]


def load_policy(path: str | Path | None) -> tuple[Policy, str]:
    """The policy and where it came from (a file, or "built-in default")."""
    if path is None and Path(DEFAULT_POLICY_FILE).exists():
        path = DEFAULT_POLICY_FILE
    if path is None:
        return Policy(), "built-in default"
    return load_model(path, Policy), str(path)  # named as given in every error


def looks_like_policy(path: str | Path) -> bool:
    """Whether a YAML file is a policy rather than a plan: it has no ``plan:`` key, and
    its name ends in ``policy.yaml`` (or ``.yml``) or its keys are all risk levels. A file
    that cannot be read is not (the plan loader says why). A plan is told by its top-level
    ``plan:`` line without parsing it (YAML parsing is most of what `validate` costs)."""
    try:
        if _PLAN_KEY.search(read_text(path)):
            return False
        root = read_yaml(path)
    except PlanError:
        return False
    if not isinstance(root, dict) or "plan" in root:
        return False
    named = Path(path).name.lower().endswith(("policy.yaml", "policy.yml"))
    return named or (bool(root) and all(key in RISK_LEVELS for key in root))
