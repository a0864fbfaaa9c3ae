"""Which environment a verb acts on (``--env``), and the values templates then see."""

from __future__ import annotations

from backout.errors import UsageError
from backout.spec.models import Plan


def select_environment(plan: Plan, name: str | None) -> str | None:
    """The environment to act on: required when the plan declares any (acting on the
    wrong one by default is how a drill reaches production), refused when it declares none."""
    declared = sorted(plan.environments)
    if not declared:
        if name:
            raise UsageError(
                f"--env {name}: plan {plan.plan} declares no `environments:`",
                hint="drop --env, or add `environments: {staging: {...}, production: {...}}`",
            )
        return None
    if not name:
        raise UsageError(
            f"plan {plan.plan} runs in several environments ({', '.join(declared)}): "
            "say which with --env",
            hint="--env NAME or BACKOUT_ENV=NAME, NAME one of: " + ", ".join(declared),
        )
    if name not in plan.environments:
        raise UsageError(
            f"--env {name}: plan {plan.plan} has no environment {name!r}",
            hint=f"environments: {', '.join(declared)}",
        )
    return name


def environment_values(plan: Plan, name: str | None) -> dict[str, str]:
    """``environment`` as templates see it: the environment's values and its ``name``
    (empty when the plan declares no environments)."""
    if not name:
        return {}
    return {**plan.environments.get(name, {}), "name": name}
