"""The dashboard's other pages, each over the verbs the CLI uses (no query of its own):

- ``GET /changes`` the change records, newest first (``backout changes``), by status;
- ``GET /changes/{id}`` one change (``backout change show``): its gate's checks
  (``backout gate``), approvals, its plan's rehearsals and its runs; and, for an approver,
  ``POST /changes/{id}/approve`` (``backout change approve``, ``comment``);
- ``GET /audit`` the audit trail, newest first, a page at a time, with whether its hash
  chain holds, as far as verified (:class:`backout.server.upkeep.ChainWatch`: the records
  new since the last verification; the whole chain at start and every few minutes;
  ``backout audit verify`` walks it all);
- ``GET /flags`` each feature flag's state (``backout flags list``);
- ``GET /status`` the status page (``backout status-page build``), drawn from the store
  at each request without writing anything (the server resolves quiet incidents itself:
  :mod:`backout.server.upkeep`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from backout import commands
from backout.changes.lifecycle import ChangeStatus
from backout.commands.caller import Caller
from backout.commands.incidents import status_page_html
from backout.errors import BackoutError, NotFound, UsageError
from backout.kernel.roles import Permission, Principal
from backout.server import pages
from backout.server.auth import Gate
from backout.server.upkeep import ChainWatch
from backout.server.web import (
    HEADERS,
    flash,
    message,
    read_form,
    reader,
    render,
    shown_flash,
    take_flash,
)
from backout.server.web_actions import TEXT_MAX, allowed_to

AUDIT_LIMIT = 50
APPROVABLE = frozenset({ChangeStatus.PLANNED.value, ChangeStatus.APPROVED.value})


def install(app: FastAPI, gate: Gate, chain: ChainWatch | None = None) -> None:
    """``chain``: the audit chain's verification kept between page loads (one of its own,
    never walked again in full, if none)."""
    app.include_router(router(gate, chain or ChainWatch(gate.caller)))


def router(gate: Gate, chain: ChainWatch) -> APIRouter:
    web = APIRouter(include_in_schema=False)

    @web.get("/changes", response_class=HTMLResponse)
    def changes(
        request: Request, status: str | None = None, limit: int = pages.DEFAULT_LIMIT
    ) -> Response:
        allowed = reader(gate, request)
        if isinstance(allowed, Response):
            return allowed
        who, caller = allowed
        context: dict[str, Any] = {
            "who": who,
            "csrf": gate.csrf_for(request),
            "chosen": status or "",
            "statuses": [s.value for s in ChangeStatus],
            "changes": [],
            "error": None,
        }
        try:
            _check_limit(limit)
            if status and status not in context["statuses"]:
                raise UsageError(
                    f"no change status is called {status!r}",
                    hint="one of: " + ", ".join(context["statuses"]),
                )
            context["changes"] = commands.changes.list_all(caller, status or None, limit)
        except BackoutError as exc:
            context["error"] = message(exc)
            return render("changes.html", exc.http_status, **context)
        return render("changes.html", **context)

    @web.get("/changes/{change_id}", response_class=HTMLResponse)
    def change(request: Request, change_id: str) -> Response:
        allowed = reader(gate, request)
        if isinstance(allowed, Response):
            return allowed
        who, caller = allowed
        return show_change(gate, request, who, caller, change_id)

    @web.post("/changes/{change_id}/approve", response_class=HTMLResponse)
    async def approve(request: Request, change_id: str) -> Response:
        form = await read_form(request)
        return await run_in_threadpool(_approve, gate, request, change_id, form)

    @web.get("/audit", response_class=HTMLResponse)
    def audit(
        request: Request,
        action: str | None = None,
        actor: str | None = None,
        subject: str | None = None,
        before: int | None = None,
        after: int | None = None,
        limit: int = AUDIT_LIMIT,
    ) -> Response:
        allowed = reader(gate, request)
        if isinstance(allowed, Response):
            return allowed
        who, caller = allowed
        chosen = {"action": action or "", "actor": actor or "", "subject": subject or ""}
        context: dict[str, Any] = {"who": who, "chosen": chosen, "entries": [], "error": None}
        context["csrf"] = gate.csrf_for(request)
        checked = chain.check()
        context |= {"verification": checked.verification, "checked": checked}
        context |= {"next_url": None, "previous_url": None}
        try:
            _check_limit(limit)
            if (before is not None and before < 1) or (after is not None and after < 0):
                raise UsageError("before and after are record numbers (seq), 1 and up")
            # a page by its keys, and one record more: whether there is another page that way
            entries = commands.audit_log(
                caller,
                action or None,
                subject or None,
                actor or None,
                None,
                limit + 1,
                before=before if after is None else None,
                after=after,
            )
        except BackoutError as exc:
            context["error"] = message(exc)
            return render("audit.html", exc.http_status, **context)
        more = len(entries) > limit
        # going newer, the extra record is the newest one; else the oldest
        entries = entries[:limit] if after is not None else entries[-limit:]
        shown = entries[::-1]  # newest first
        context["entries"] = shown
        kept = {key: value for key, value in chosen.items() if value}
        if limit != AUDIT_LIMIT:
            kept["limit"] = str(limit)
        if shown and (more if after is None else True):
            context["next_url"] = "/audit?" + urlencode({**kept, "before": shown[-1].seq})
        if shown and (before is not None or (after is not None and more)):
            context["previous_url"] = "/audit?" + urlencode({**kept, "after": shown[0].seq})
        return render("audit.html", **context)

    @web.get("/flags", response_class=HTMLResponse)
    def flags(request: Request) -> Response:
        allowed = reader(gate, request)
        if isinstance(allowed, Response):
            return allowed
        who, caller = allowed
        found = commands.flags.list_flags(caller)
        return render("flags.html", who=who, csrf=gate.csrf_for(request), flags=found)

    @web.get("/status", response_class=HTMLResponse)
    def status(request: Request) -> Response:
        allowed = reader(gate, request)
        if isinstance(allowed, Response):
            return allowed
        who, caller = allowed
        try:
            html = status_page_html(caller)
        except BackoutError as exc:
            return render("error.html", exc.http_status, who=who, message=message(exc))
        return HTMLResponse(html, headers=HEADERS)

    return web


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= pages.MAX_LIMIT:
        raise UsageError(f"limit must be 1 to {pages.MAX_LIMIT}, not {limit}")


def _change_id(text: str) -> int:
    if not text.isdigit():
        raise NotFound(f"no change {text!r}: a change's id is a number", hint="see /changes")
    return int(text)


def show_change(
    gate: Gate,
    request: Request,
    who: Principal,
    caller: Caller,
    change_id: str,
    status: int = 200,
    error: str | None = None,
    comment: str = "",
) -> Response:
    """The change's page; ``error`` (with the ``comment`` typed) next to the approve form."""
    try:
        report = commands.changes.show(caller, _change_id(change_id))
    except BackoutError as exc:
        return render("error.html", exc.http_status, who=who, message=message(exc))
    try:
        checks, gate_error = commands.changes.gate(caller, report.id), None
    except BackoutError as exc:  # e.g. a policy file that does not load
        checks, gate_error = None, message(exc)
    notice = take_flash(request) if status == 200 else None
    response = render(
        "change.html",
        status,
        who=who,
        change=report,
        gate=checks,
        gate_error=gate_error,
        may_approve=who.may(Permission.APPROVE) and report.status in APPROVABLE,
        csrf=gate.csrf_for(request),
        flash=notice,
        error=error,
        comment=comment,
    )
    return shown_flash(response, request) if notice else response


def _approve(gate: Gate, request: Request, change_id: str, form: dict[str, str]) -> Response:
    back = f"/changes/{quote(change_id, safe='')}"
    allowed = allowed_to(gate, request, form, Permission.APPROVE, back)
    if isinstance(allowed, Response):
        return allowed
    who, caller = allowed
    comment = form.get("comment", "").strip()
    try:
        if len(comment) > TEXT_MAX:
            raise UsageError(f"the comment is longer than {TEXT_MAX} characters")
        done = commands.changes.approve(caller, _change_id(change_id), comment)
    except NotFound as exc:
        return render("error.html", exc.http_status, who=who, message=message(exc))
    except BackoutError as exc:  # e.g. the verb refusing the change's own requester
        refused = message(exc)
        return show_change(gate, request, who, caller, change_id, exc.http_status, refused, comment)
    said = f"Approved change {done.id}: it is {done.status}."
    return flash(RedirectResponse(f"/changes/{done.id}", status_code=303), said)
