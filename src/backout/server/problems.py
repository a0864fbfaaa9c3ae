"""Every error as RFC 9457 problem+json: ``type``, ``title``, ``status``, ``detail`` and,
when the error has them, ``hint`` and ``run_id``. A :class:`~backout.errors.BackoutError`
answers with its ``http_status``; a request FastAPI cannot validate with 422; an unknown
route with 404. An unexpected exception is a bare 500 (its traceback goes to the log, never
to the client), and no body ever carries what the client sent (it may hold a token).
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from backout.errors import BackoutError, Unauthenticated
from backout.server.access import is_warm_up

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:backout:problem:"
log = logging.getLogger("backout.server")


class ProblemResponse(JSONResponse):
    media_type = MEDIA_TYPE


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def problem(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> ProblemResponse:
    """A problem+json response; ``kind`` names the problem type (default: the status's)."""
    phrase = HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + (kind or _kebab(phrase.replace(" ", ""))),
        "title": phrase,
        "status": status,
        "detail": detail,
        **(extra or {}),
    }
    return ProblemResponse(body, status_code=status, headers=headers)


def of_error(exc: BackoutError) -> ProblemResponse:
    extra: dict[str, Any] = {}
    if exc.hint:
        extra["hint"] = exc.hint
    if exc.run_id:
        extra["run_id"] = exc.run_id
    headers = None
    if isinstance(exc, Unauthenticated):
        headers = {"WWW-Authenticate": 'Bearer realm="backout"'}
    kind = _kebab(type(exc).__name__.removesuffix("Error"))
    return problem(exc.http_status, exc.message, kind=kind, extra=extra, headers=headers)


def _field(location: Any) -> str:
    parts = [str(part) for part in location if part != "body"]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    """Answer every error ``app`` raises as problem+json."""

    @app.exception_handler(BackoutError)
    async def _backout_error(request: Request, exc: BackoutError) -> ProblemResponse:
        # the one answer hides the case; the log keeps it (not for the server's warm-up)
        if isinstance(exc, Unauthenticated) and not is_warm_up(request.scope):
            log.warning("refused %s %s: token %s", request.method, request.url.path, exc.reason)
        return of_error(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> ProblemResponse:
        # where and what, never the input itself
        errors = [
            {"field": _field(error.get("loc", ())), "message": str(error.get("msg", ""))}
            for error in exc.errors()
        ]
        detail = "; ".join(f"{error['field']}: {error['message']}" for error in errors)
        return problem(
            422,
            detail or "the request is not valid",
            kind="invalid-request",
            extra={"errors": errors, "hint": "see /api/v1/docs for what each endpoint takes"},
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> ProblemResponse:
        if exc.status_code == 404:
            return problem(
                404,
                f"no endpoint {request.url.path}",
                kind="no-such-endpoint",
                extra={"hint": "the endpoints are listed at /api/v1/docs"},
            )
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return problem(exc.status_code, detail, headers=dict(exc.headers or {}) or None)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, _exc: Exception) -> ProblemResponse:
        # Starlette raises the exception again after this answer: uvicorn logs its traceback
        return problem(500, "the server failed to answer; its log says why", kind="internal")
