"""The plans of the server's plan folder (``backout server --plans DIR``) over HTTP, and the
validator for a plan a client has not put there yet. Each endpoint is a thin layer over a
verb of :mod:`backout.commands.plans`; none of them runs a step.

``POST /plans/validate`` takes the plan's YAML text, writes it to a file of its own in a
temporary folder (the loader reads files), validates it as ``backout validate`` does, and
deletes it. Its issues name the file as the request named it, never the temporary path.

No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations.
"""

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from backout import commands
from backout.commands.caller import Caller
from backout.errors import Issue
from backout.flags.guard import MIB
from backout.kernel.roles import Permission
from backout.plans import load_plan
from backout.server.auth import Gate, needs
from backout.server.plan_folder import PlanFolder
from backout.server.problems import ProblemResponse, problem
from backout.server.routes import API

MARKDOWN = "text/markdown; charset=utf-8"
INVALID_HINT = "fix each issue at its line and field, then validate again"


class ValidatePlan(BaseModel):
    text: str = Field(
        max_length=MIB, description="The plan file's YAML text (a plan may be 256 KiB at most)."
    )
    name: str = Field(
        "plan.yaml",
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="The file name the issues name it by (no folder).",
    )
    strict: bool = Field(False, description="Treat lint warnings as errors (`--strict`).")


def _issue_json(issue: Issue, folder: str = "") -> dict[str, Any]:
    """An issue as JSON; ``folder``: a prefix to leave out of its texts (a temporary one)."""
    fields = vars(issue)
    return {key: _without(value, folder) for key, value in fields.items()}


def _without(value: Any, folder: str) -> Any:
    return value.replace(folder, "") if folder and isinstance(value, str) else value


def _is_error(issue: Issue) -> bool:
    return issue.severity == "error"


def _summary(name: str, path: Path) -> dict[str, Any]:
    """One plan of the folder: its name, service and version, or why it does not load (a
    policy file beside the plans: whether it is valid)."""
    issues = commands.validate([path])[str(path)]  # a policy file is checked as a policy
    kind = "policy" if commands.looks_like_policy(path) else "plan"
    entry: dict[str, Any] = {"name": name, "kind": kind, "valid": not any(map(_is_error, issues))}
    if kind == "policy" or not entry["valid"]:
        return {**entry, "issues": [_issue_json(i) for i in issues]}
    loaded = load_plan(path)
    plan = loaded.plan
    return {
        **entry,
        "plan": plan.plan,
        "service": plan.service_name,
        "risk": plan.risk,
        "version": loaded.version,
        "warnings": len(issues),
    }


def plans(gate: Gate, folder: PlanFolder) -> APIRouter:
    router = APIRouter(prefix=API, tags=["plans"])
    reader = Annotated[Caller, Depends(needs(gate, Permission.READ))]

    @router.get(
        "/plans",
        summary="The plans of the server's plan folder, each with its service or its issues",
    )
    def list_plans(_caller: reader) -> dict[str, Any]:
        return {"plans": [_summary(name, folder.path(name)) for name in folder.names()]}

    @router.get(
        "/plans/{name}",
        summary="A plan of the folder, validated: its fields, version and lint warnings",
        description="A plan that does not load is a 422 problem listing its issues.",
    )
    def show_plan(_caller: reader, name: str) -> dict[str, Any]:
        path = folder.path(name)
        loaded = load_plan(path)
        return {
            "name": name,
            "file": str(path),
            "version": loaded.version,
            "plan": loaded.plan.model_dump(mode="json"),
            "issues": [_issue_json(i) for i in commands.validate([path])[str(path)]],
        }

    @router.get(
        "/plans/{name}/runbook",
        summary="A plan's runbook in Markdown (as `backout show`)",
        response_class=Response,
        responses={200: {"content": {MARKDOWN: {}}, "description": "The runbook"}},
    )
    def runbook(_caller: reader, name: str) -> Response:
        return Response(commands.show(folder.path(name)), media_type=MARKDOWN)

    @router.get(
        "/plans/{name}/dry-run",
        summary="Every step rendered with the latest baseline; nothing runs "
        "(as `backout run --dry-run --json`)",
        description="Secret values are redacted; what would stop a real run is in `problems`.",
    )
    def dry_run(
        caller: reader,
        name: str,
        environment: Annotated[str | None, Query(max_length=200)] = None,
    ) -> dict[str, Any]:
        return commands.dry_run(caller, folder.path(name), environment).to_json()

    @router.post(
        "/plans/validate",
        summary="Validate a plan's YAML text without running anything (as `backout validate`)",
        description="200: the plan is valid (`issues` holds its lint warnings). 422: it is "
        "not; the problem's `issues` lists every one with its file, line, field, message "
        "and hint.",
        responses={422: {"description": "The plan is not valid, or the request is not"}},
    )
    def validate(_caller: reader, body: ValidatePlan) -> Any:
        with tempfile.TemporaryDirectory(prefix="backout-validate-") as where:
            path = Path(where) / body.name
            path.write_text(body.text, encoding="utf-8")  # JSON text: never a lone surrogate
            issues = commands.validate([path], strict=body.strict)[str(path)]
            shown = [_issue_json(i, f"{where}/") for i in issues]
        errors = [i for i in shown if i["severity"] == "error"]
        if not errors:
            return {"valid": True, "name": body.name, "issues": shown}
        return _invalid(body.name, errors, shown)

    return router


def _invalid(
    name: str, errors: list[dict[str, Any]], shown: list[dict[str, Any]]
) -> ProblemResponse:
    first = errors[0]
    where = f"line {first['line']}" if first["line"] else "the file"
    count = f"{len(errors)} error(s)"
    detail = f"{name} is not a valid plan: {count}, the first at {where}: {first['message']}"
    return problem(422, detail, kind="plan", extra={"issues": shown, "hint": INVALID_HINT})
