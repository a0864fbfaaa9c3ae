"""The dashboard: read-only HTML pages over the same store and roles as the API.

- ``GET /login`` a form taking an API token; ``POST /login`` checks it and keeps it in an
  HttpOnly, SameSite=Strict cookie (Secure over https); ``POST /logout`` drops it;
- ``GET /`` the runs, newest first, filtered and paged as ``GET /api/v1/runs``;
- ``GET /runs/{id}`` a run: summary, steps, checks, the trigger's evidence, the
  explanation, the report's charts and the journal as a timeline, which the page's script
  keeps up to date from ``/api/v1/runs/{id}/events`` (the cookie authenticates it).

A page without a valid token (cookie or bearer header) redirects to the sign-in, unless
the server is open (``--open``). Templates are Jinja2 with autoescape on; the script and
stylesheet are served from ``/static``, nothing is fetched from elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from backout.commands.caller import Caller
from backout.commands.tokens import authenticate
from backout.errors import BackoutError, Unauthenticated
from backout.kernel.roles import Permission, Principal
from backout.kernel.states import RunStatus
from backout.server import pages, web_views
from backout.server.auth import COOKIE, Gate

STATIC = Path(__file__).parent / "static"
FORM_MAX = 16_384  # bytes of a sign-in form: a token is 43
# pages are drawn here; scripts, styles and streams come from this server alone
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_ENV = Environment(
    loader=PackageLoader("backout.server", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["utc"] = web_views.utc


def install(app: FastAPI, gate: Gate) -> None:
    """Serve the dashboard's pages and its static files from ``app``."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(router(gate))


def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _ENV.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this server, never another site."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


def _to_login(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(here, safe='')}", status_code=303)


def _who(gate: Gate, request: Request) -> Principal | None:
    """The viewer of a page: by the bearer header, the cookie, or --open; None to sign in."""
    try:
        return gate.principal(request)
    except Unauthenticated:
        return None


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    fields = parse_qs(body[:FORM_MAX].decode(errors="replace"), keep_blank_values=True)
    return {key: values[0] for key, values in fields.items() if values}


def router(gate: Gate) -> APIRouter:
    web = APIRouter(include_in_schema=False)

    def page(request: Request) -> tuple[Principal, Caller] | Response:
        principal = _who(gate, request)
        if principal is None:
            return _to_login(request)
        if not principal.may(Permission.READ):
            return render("error.html", 403, who=principal, message="your role may not read")
        return principal, gate.caller_for(principal)

    @web.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str | None = None) -> Response:
        return render("login.html", next=_safe_next(next), error=None, who=None)

    @web.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        form = await _form(request)
        target = _safe_next(form.get("next"))
        token = form.get("token", "").strip()
        try:
            principal = authenticate(gate.caller, token)
        except Unauthenticated as exc:
            message = "enter an API token" if exc.reason == "missing" else "that token is not valid"
            return render("login.html", 401, next=target, error=message, who=None)
        if not principal.may(Permission.READ):
            return render("login.html", 403, next=target, error="that token may not read", who=None)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    @web.post("/logout")
    def logout(request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(
            COOKIE,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @web.get("/", response_class=HTMLResponse)
    def runs(
        request: Request,
        service: str | None = None,
        status: str | None = None,
        mode: str | None = None,
        cursor: str | None = None,
        limit: int = pages.DEFAULT_LIMIT,
    ) -> Response:
        allowed = page(request)
        if isinstance(allowed, Response):
            return allowed
        who, caller = allowed
        chosen = {"service": service or "", "status": status or "", "mode": mode or ""}
        context: dict[str, Any] = {
            "who": who,
            "chosen": chosen,
            "statuses": [s.value for s in RunStatus],
            "modes": pages.MODES,
            "lines": [],
            "next_url": None,
            "first_url": None,
            "error": None,
        }
        try:
            filters = pages.Filters.parse(service or None, status or None, mode or None, None)
            found = web_views.runs_page(caller, filters, limit, cursor or None)
        except BackoutError as exc:
            context["error"] = _message(exc)
            return render("runs.html", exc.http_status, **context)
        kept = {key: value for key, value in chosen.items() if value}
        if limit != pages.DEFAULT_LIMIT:
            kept["limit"] = str(limit)
        if found.next_cursor:
            context["next_url"] = "/?" + urlencode({**kept, "cursor": found.next_cursor})
        if cursor:
            context["first_url"] = "/?" + urlencode(kept) if kept else "/"
        context["lines"] = found.lines
        return render("runs.html", **context)

    @web.get("/runs/{run_id}", response_class=HTMLResponse)
    def run(request: Request, run_id: str) -> Response:
        allowed = page(request)
        if isinstance(allowed, Response):
            return allowed
        who, caller = allowed
        try:
            shown = web_views.run_page(caller, run_id)
        except BackoutError as exc:
            return render("error.html", exc.http_status, who=who, message=_message(exc))
        return render(
            "run.html",
            who=who,
            run=shown,
            report=shown.report,
            kinds=" ".join(web_views.KINDS),
            # the charts are SVG the report module drew, every text in them escaped
            signal_svg=Markup(shown.signal_svg) if shown.signal_svg else None,  # noqa: S704
            steps_svg=Markup(shown.steps_svg) if shown.steps_svg else None,  # noqa: S704
        )

    return web


def _message(exc: BackoutError) -> str:
    return exc.message + (f" ({exc.hint})" if exc.hint else "")
