"""The dashboard: HTML pages over the same store and roles as the API.

- ``GET /login`` a form taking an API token; ``POST /login`` checks it and keeps it in an
  HttpOnly, SameSite=Strict cookie (Secure over https); ``POST /logout`` drops it;
- ``GET /`` the runs, newest first, filtered and paged as ``GET /api/v1/runs``;
- the run page and its forms (approve, resume, abandon) are in :mod:`.web_actions`; the
  changes, the audit trail, the flags and the status page in :mod:`.web_pages`.

A page without a valid token (cookie or bearer header) redirects to the sign-in, unless
the server is open (``--open``). Templates are Jinja2 with autoescape on; the script and
stylesheet are served from ``/static``, nothing is fetched from elsewhere. A page that
acts says so in a flash message after the redirect that follows its form (:func:`flash`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape

from backout.commands.caller import Caller
from backout.commands.tokens import authenticate
from backout.errors import BackoutError, Unauthenticated
from backout.kernel.roles import Permission, Principal
from backout.kernel.states import RunStatus
from backout.server import pages, web_views
from backout.server.auth import COOKIE, Gate

STATIC = Path(__file__).parent / "static"
FORM_MAX = 16_384  # bytes of a form: a token is 43, a comment or reason at most 2000 chars
FLASH = "backout_flash"  # what a form did, shown once by the page it redirects to
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


def to_login(request: Request, here: str | None = None) -> RedirectResponse:
    """To the sign-in, which comes back to ``here`` (default: the page asked for)."""
    if here is None:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(here, safe='')}", status_code=303)


def _who(gate: Gate, request: Request) -> Principal | None:
    """The viewer of a page: by the bearer header, the cookie, or --open; None to sign in."""
    try:
        return gate.principal(request)
    except Unauthenticated:
        return None


async def read_form(request: Request) -> dict[str, str]:
    """A form's fields (the first value of each), from at most ``FORM_MAX`` bytes."""
    body = await request.body()
    fields = parse_qs(body[:FORM_MAX].decode(errors="replace"), keep_blank_values=True)
    return {key: values[0] for key, values in fields.items() if values}


def reader(gate: Gate, request: Request) -> tuple[Principal, Caller] | Response:
    """The page's viewer and caller, or the response that refuses them (to the sign-in;
    403 for a role that may not read)."""
    principal = _who(gate, request)
    if principal is None:
        return to_login(request)
    if not principal.may(Permission.READ):
        return render("error.html", 403, who=principal, message="your role may not read")
    return principal, gate.caller_for(principal)


def flash(response: Response, said: str) -> Response:
    """Keep ``said`` for the next page this browser shows (it shows it once)."""
    response.set_cookie(FLASH, quote(said), max_age=300, httponly=True, samesite="strict")
    return response


def take_flash(request: Request) -> str | None:
    """The message a form left for this page; drop it with :func:`shown_flash`."""
    kept = request.cookies.get(FLASH)
    return unquote(kept)[:500] if kept else None


def shown_flash(response: Response, request: Request) -> Response:
    if request.cookies.get(FLASH):
        response.delete_cookie(FLASH, httponly=True, samesite="strict")
    return response


def router(gate: Gate) -> APIRouter:
    web = APIRouter(include_in_schema=False)

    @web.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str | None = None) -> Response:
        return render("login.html", next=_safe_next(next), error=None, who=None)

    @web.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        form = await read_form(request)
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
        allowed = reader(gate, request)
        if isinstance(allowed, Response):
            return allowed
        who, caller = allowed
        chosen = {"service": service or "", "status": status or "", "mode": mode or ""}
        context: dict[str, Any] = {
            "who": who,
            "csrf": gate.csrf_for(request),
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
            context["error"] = message(exc)
            return render("runs.html", exc.http_status, **context)
        kept = {key: value for key, value in chosen.items() if value}
        if limit != pages.DEFAULT_LIMIT:
            kept["limit"] = str(limit)
        if found.next_cursor:
            context["next_url"] = "/?" + urlencode({**kept, "cursor": found.next_cursor})
        if cursor:
            context["first_url"] = "/?" + urlencode(kept) if kept else "/"
        context["lines"] = found.lines
        # the newest page follows every run's events; an older one stays as it was read
        context["live"] = not cursor
        context["kinds"] = " ".join(web_views.KINDS)
        return render("runs.html", **context)

    return web


def message(exc: BackoutError) -> str:
    return exc.message + (f" ({exc.hint})" if exc.hint else "")
