"""The run page and the forms on it that act, over the same verbs and roles as the API.

- ``GET /runs/{id}`` a run: summary, steps, checks, the trigger's evidence, the
  explanation, the report's charts and the journal as a timeline, which the page's script
  keeps up to date from ``/api/v1/runs/{id}/events`` (the cookie authenticates it); and,
  for a role that may use them, the forms below;
- ``POST /runs/{id}/approve`` (role approver or admin) approves the checkpoint a deploy
  waits at, as ``backout approve`` (``comment``);
- ``POST /runs/{id}/resume`` (operator or admin) resumes a run that needs attention, with
  a decision for each interrupted step (field ``step-N``: ``done``, ``retry`` or ``skip``),
  as ``backout resume``;
- ``POST /runs/{id}/abandon`` (operator or admin) gives it up, as ``backout abandon``
  (``reason``).

Every form carries the CSRF token of the sign-in (:meth:`~.auth.Gate.form_principal`).
A role that may not act is refused with a 403 page and an ``api.denied`` audit record, as
the API refuses it. Abandoning, and resuming with a retry or a skip, are destructive: the
form asks for the run's id typed out (``confirm``), and a mismatch changes nothing. After
an action, a 303 leads back to the run page, which says what was done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from backout import commands
from backout.commands.caller import Caller
from backout.engine.queries import waiting_stage
from backout.engine.steps import Decision
from backout.errors import BackoutError, Conflict, Forbidden, NotFound, Unauthenticated, UsageError
from backout.kernel.roles import Permission, Principal
from backout.kernel.states import RunStatus, StepStatus
from backout.server import web_views
from backout.server.auth import CSRF_FIELD, Gate
from backout.server.web import (
    flash,
    message,
    read_form,
    reader,
    render,
    shown_flash,
    take_flash,
    to_login,
)

TEXT_MAX = 2000  # characters of a comment or a reason, as the API takes them
DECISIONS: dict[str, Decision] = {"done": "done", "retry": "retry", "skip": "skip"}
DESTRUCTIVE = frozenset({"retry", "skip"})

Act = Callable[[Principal, Caller, dict[str, str]], Response]


@dataclass(frozen=True)
class RunActions:
    """What the run page offers: the checkpoint waiting for an approval (stage from 1),
    whether the run needs attention and which steps were interrupted, and what the
    viewer's role may do about them."""

    stage: int | None
    needs_attention: bool
    interrupted: list[dict[str, Any]]
    may_approve: bool
    may_operate: bool

    @classmethod
    def of(cls, caller: Caller, who: Principal, report: dict[str, Any]) -> RunActions:
        status = str(report["status"])
        stage = None
        if status == RunStatus.RUNNING:
            try:
                run_id = str(report["run_id"])
                stage = waiting_stage(commands.journal(caller, run_id), run_id) + 1
            except Conflict:
                pass
        attention = status == RunStatus.NEEDS_ATTENTION
        steps = report["steps"] if attention else []
        interrupted = [s for s in steps if s["status"] == StepStatus.RUNNING]
        return cls(
            stage,
            attention,
            interrupted,
            who.may(Permission.APPROVE),
            who.may(Permission.OPERATE),
        )


def install(app: FastAPI, gate: Gate) -> None:
    app.include_router(router(gate))


def show_run(
    gate: Gate,
    request: Request,
    who: Principal,
    caller: Caller,
    run_id: str,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    """The run page; ``errors`` by form (approve, resume, abandon), shown next to it with
    what was typed (``values``) when a form is shown again."""
    try:
        shown = web_views.run_page(caller, run_id)
    except BackoutError as exc:
        return render("error.html", exc.http_status, who=who, message=message(exc))
    notice = take_flash(request) if status == 200 else None
    response = render(
        "run.html",
        status,
        who=who,
        run=shown,
        report=shown.report,
        kinds=" ".join(web_views.KINDS),
        # the charts are SVG the report module drew, every text in them escaped
        signal_svg=Markup(shown.signal_svg) if shown.signal_svg else None,  # noqa: S704
        steps_svg=Markup(shown.steps_svg) if shown.steps_svg else None,  # noqa: S704
        actions=RunActions.of(caller, who, shown.report),
        csrf=gate.csrf_for(request),
        flash=notice,
        errors=errors or {},
        values=values or {},
    )
    return shown_flash(response, request) if notice else response


def router(gate: Gate) -> APIRouter:
    web = APIRouter(include_in_schema=False)

    @web.get("/runs/{run_id}", response_class=HTMLResponse)
    def run(request: Request, run_id: str) -> Response:
        allowed = reader(gate, request)
        if isinstance(allowed, Response):
            return allowed
        who, caller = allowed
        return show_run(gate, request, who, caller, run_id)

    @web.post("/runs/{run_id}/approve", response_class=HTMLResponse)
    async def approve(request: Request, run_id: str) -> Response:
        def act(who: Principal, caller: Caller, form: dict[str, str]) -> Response:
            comment = form.get("comment", "").strip()
            if len(comment) > TEXT_MAX:
                raise UsageError(f"the comment is longer than {TEXT_MAX} characters")
            done = commands.approve(caller, run_id, comment)
            return _back(done.run_id, f"Approved stage {done.stage}: the deploy goes on.")

        return await _post(gate, request, run_id, Permission.APPROVE, "approve", act)

    @web.post("/runs/{run_id}/resume", response_class=HTMLResponse)
    async def resume(request: Request, run_id: str) -> Response:
        def act(who: Principal, caller: Caller, form: dict[str, str]) -> Response:
            decisions = _decisions(form)
            if DESTRUCTIVE & set(decisions.values()):
                _confirmed(caller, run_id, form, "to retry or skip a step")
            done = commands.resume(caller, run_id, decisions)
            outcome = done.status + (f" ({done.result})" if done.result else "")
            return _back(done.run_id, f"Resumed: the run is now {outcome}.")

        return await _post(gate, request, run_id, Permission.OPERATE, "resume", act)

    @web.post("/runs/{run_id}/abandon", response_class=HTMLResponse)
    async def abandon(request: Request, run_id: str) -> Response:
        def act(who: Principal, caller: Caller, form: dict[str, str]) -> Response:
            reason = form.get("reason", "").strip()
            if not reason:
                raise UsageError("say why the run is abandoned: the reason is kept")
            if len(reason) > TEXT_MAX:
                raise UsageError(f"the reason is longer than {TEXT_MAX} characters")
            _confirmed(caller, run_id, form, "to abandon it")
            done = commands.abandon(caller, run_id, reason)
            return _back(done.run_id, f"Abandoned: the run ended {done.status}.")

        return await _post(gate, request, run_id, Permission.OPERATE, "abandon", act)

    return web


async def _post(
    gate: Gate, request: Request, run_id: str, permission: Permission, name: str, act: Act
) -> Response:
    """Read the form, then check and act in the thread pool (a verb may take a while)."""
    form = await read_form(request)
    return await run_in_threadpool(_checked, gate, request, run_id, permission, name, act, form)


def _checked(
    gate: Gate,
    request: Request,
    run_id: str,
    permission: Permission,
    name: str,
    act: Act,
    form: dict[str, str],
) -> Response:
    allowed = allowed_to(gate, request, form, permission, f"/runs/{quote(run_id, safe='')}")
    if isinstance(allowed, Response):
        return allowed
    who, caller = allowed
    try:
        return act(who, caller, form)
    except NotFound as exc:
        return render("error.html", exc.http_status, who=who, message=message(exc))
    except BackoutError as exc:  # shown next to the form, with what was typed
        kept = {key: value for key, value in form.items() if key not in (CSRF_FIELD, "confirm")}
        errors = {name: message(exc)}
        return show_run(gate, request, who, caller, run_id, exc.http_status, errors, kept)


def allowed_to(
    gate: Gate, request: Request, form: dict[str, str], permission: Permission, back: str
) -> tuple[Principal, Caller] | Response:
    """The poster of a dashboard form and their caller when the form's CSRF token holds
    and their role grants ``permission``; else the response that refuses them (the
    sign-in, to come back to ``back``; 403, audited as the API audits it)."""
    try:
        who = gate.form_principal(request, form.get(CSRF_FIELD))
    except Unauthenticated:
        return to_login(request, back)
    except Forbidden as exc:
        return render("error.html", 403, who=None, message=message(exc))
    if not who.may(permission):
        try:
            gate.deny(request, who, permission)
        except Forbidden as exc:
            return render("error.html", 403, who=who, message=message(exc))
    return who, gate.caller_for(who)


def _back(run_id: str, said: str) -> Response:
    """303 to the run page, which shows what was done."""
    return flash(RedirectResponse(f"/runs/{quote(run_id, safe='')}", status_code=303), said)


def _decisions(form: dict[str, str]) -> dict[int, Decision]:
    """``step-N`` fields as the verb takes them (by index from 0); an empty one: none."""
    chosen: dict[int, Decision] = {}
    for key, value in form.items():
        number = key.removeprefix("step-")
        if number == key or not value:
            continue
        if not number.isdigit() or int(number) < 1 or value not in DECISIONS:
            raise UsageError(
                f"{key}={value!r} is not a decision",
                hint="choose mark done, retry or skip for a step that started and never finished",
            )
        chosen[int(number) - 1] = DECISIONS[value]
    return chosen


def _confirmed(caller: Caller, run_id: str, form: dict[str, str], what: str) -> None:
    """The run's id, typed out, or nothing is done."""
    full = commands.status(caller, run_id).run_id
    typed = form.get("confirm", "").strip()
    if typed != full:
        said = f"you typed {typed!r}" if typed else "nothing was typed"
        raise UsageError(
            f"type the run's id {full} {what}; {said}, so nothing was done",
            run_id=full,
        )
