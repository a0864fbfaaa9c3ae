"""``terraform:`` and ``tofu:`` — apply a configuration (the previous one, checked out by an
earlier step or kept in its own folder) through a reviewed plan.

The step never runs a bare ``apply``. It runs ``init``, then ``plan -out PLANFILE
-detailed-exitcode``; no change (exit 0) ends the step there, which makes it safe to run
again. Otherwise ``show -json PLANFILE`` is summarised into the journal — which resources
are created, updated, replaced and destroyed — the plan is refused when it destroys more
than ``max_destroy``, and only then is that very plan file applied (``apply PLANFILE``):
what is applied is what was reviewed, even if the configuration or the state moved in
between (Terraform then refuses the stale plan).

Variables reach Terraform as ``TF_VAR_name`` environment variables, never on the command
line. OpenTofu takes the same commands and prints the same JSON: the ``tofu:`` kind is this
action with ``program: tofu``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from pydantic import Field

from backout.actions.base import Action, Outcome
from backout.errors import ActionError
from backout.kernel.options import Context, resolve
from backout.probes.terraform import TerraformTarget
from backout.probes.toolcli import Deadline, ToolResult, Transcript, read_json, run_tool

NO_CHANGES, CHANGES = 0, 2  # plan -detailed-exitcode
MAX_LISTED = 50  # addresses kept per action in the journal
ORDER = ("create", "update", "replace", "delete")


class TerraformOptions(TerraformTarget):
    init: bool = Field(True, description="Run `init -input=false` first.")
    vars: dict[str, str] = Field(
        default_factory=dict, description="Input variables (templated), passed as TF_VAR_name."
    )
    var_files: list[str] = Field(
        default_factory=list, description="-var-file files (relative to the plan file)."
    )
    max_destroy: int | None = Field(
        None, ge=0, description="Refuse a plan that destroys more resources than this."
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Extra environment, e.g. {TF_WORKSPACE: prod}."
    )


class TofuOptions(TerraformOptions):
    program: str = Field("tofu", description="The tofu program (a path, or on PATH).")


class TerraformAction(Action):
    kind = "terraform"
    in_process = False
    Options = TerraformOptions

    def execute(self, options: TerraformOptions, ctx: Context) -> Outcome:
        deadline, log = Deadline(ctx.timeout), Transcript()
        folder = resolve(ctx.workdir, options.dir)
        if not folder.is_dir():
            return Outcome(False, f"the configuration folder {options.dir} does not exist")
        try:
            with tempfile.TemporaryDirectory(prefix="backout-tfplan-") as scratch:
                return _reviewed_apply(options, ctx, folder, Path(scratch), deadline, log)
        except ActionError as exc:
            return Outcome(False, ctx.redact(exc.message), log.text(ctx))

    def describe(self, options: TerraformOptions) -> str:
        limit = (
            f", at most {options.max_destroy} destroyed" if options.max_destroy is not None else ""
        )
        return f"{options.program} plan and apply in {options.dir}{limit}"


class TofuAction(TerraformAction):
    kind = "tofu"
    Options = TofuOptions


def _reviewed_apply(
    options: TerraformOptions,
    ctx: Context,
    folder: Path,
    scratch: Path,
    deadline: Deadline,
    log: Transcript,
) -> Outcome:
    def tool(*args: str) -> ToolResult:
        argv = [options.program, *args]
        return log.add(run_tool(argv, ctx, timeout=deadline.remaining(), cwd=folder, env=env))

    env = {**options.env, "TF_IN_AUTOMATION": "1"}
    env.update({f"TF_VAR_{name}": value for name, value in options.vars.items()})
    if options.init:
        _must(tool("init", "-input=false", "-no-color"), "init")
    planfile = str(scratch / "backout.tfplan")
    var_files = [f"-var-file={resolve(ctx.workdir, f)}" for f in options.var_files]
    plan = tool(
        "plan", "-input=false", "-no-color", "-detailed-exitcode", f"-out={planfile}", *var_files
    )
    detail: dict[str, Any] = {"program": options.program, "dir": options.dir}
    if plan.exit_code == NO_CHANGES:
        detail.update(applied=False, changes={})
        return Outcome(
            True, "no changes: the infrastructure matches the configuration", log.text(ctx), detail
        )
    if plan.exit_code != CHANGES:
        raise ActionError(f"plan failed: {plan.problem()}")
    shown = tool("show", "-json", "-no-color", planfile)
    numbers, changes = summarise(read_json(shown, ctx))
    detail.update(counts=numbers, changes=changes, applied=False)
    counts = _counts(numbers)
    destroyed = numbers["delete"] + numbers["replace"]
    if options.max_destroy is not None and destroyed > options.max_destroy:
        summary = (
            f"plan refused: it destroys {destroyed} resource(s), more than max_destroy "
            f"{options.max_destroy} ({counts}); nothing was applied"
        )
        return Outcome(False, summary, log.text(ctx), detail)
    _must(tool("apply", "-input=false", "-no-color", planfile), "apply of the reviewed plan")
    detail["applied"] = True
    return Outcome(True, f"applied the reviewed plan: {counts}", log.text(ctx), detail)


def summarise(plan: Any) -> tuple[dict[str, int], dict[str, list[str]]]:
    """(count per action, addresses per action, the first 50) from ``show -json``'s
    ``resource_changes``: ``["delete", "create"]`` and ``["create", "delete"]`` are a
    replace; no-op and read are left out."""
    if not isinstance(plan, dict):
        raise ActionError("`show -json` did not print a plan object")
    numbers = dict.fromkeys(ORDER, 0)
    found: dict[str, list[str]] = {}
    for change in plan.get("resource_changes") or []:
        actions = (change.get("change") or {}).get("actions") or []
        if set(actions) == {"delete", "create"}:
            key = "replace"
        elif len(actions) == 1 and actions[0] in ORDER:
            key = actions[0]
        else:
            continue
        numbers[key] += 1
        found.setdefault(key, [])
        if len(found[key]) < MAX_LISTED:
            found[key].append(str(change.get("address", "?")))
    return numbers, {key: found[key] for key in ORDER if key in found}


WORDS = {"create": "to add", "update": "to change", "replace": "to replace", "delete": "to destroy"}


def _counts(numbers: dict[str, int]) -> str:
    return ", ".join(f"{numbers[key]} {WORDS[key]}" for key in ORDER)


def _must(result: ToolResult, what: str) -> None:
    if not result.ok:
        raise ActionError(f"{what} failed: {result.problem()}")
