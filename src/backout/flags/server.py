"""Flags for apps over HTTP: the OpenFeature Remote Evaluation Protocol (OFREP) and a list.

- ``POST /ofrep/v1/evaluate/flags/{key}`` — one flag: 200 with key, value, variant, reason
  and metadata; 404 ``FLAG_NOT_FOUND``; 400 ``PARSE_ERROR`` / ``INVALID_CONTEXT`` (a body
  that is not JSON or nests too deep; a context that is not an object, or whose
  ``targetingKey`` is not a string — for the bulk endpoint too, which then fails whole).
- ``POST /ofrep/v1/evaluate/flags`` — every flag, with an ``ETag``; ``If-None-Match``
  naming that tag (weakly, among others, or ``*``) answers 304, so polling clients only
  download changes.
- ``GET /flags`` and ``GET /flags/{key}`` — flags as stored (people, dashboards, checks).

Every route sits behind :class:`~backout.flags.guard.Guard` (token, body size and deadline).
An OpenFeature SDK's OFREP provider pointed at this server's base URL evaluates flags here.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from backout import __version__
from backout.errors import BackoutError
from backout.flags import repo
from backout.flags.evaluate import ErrorCode, Evaluation, evaluate, targeting_key_of
from backout.flags.guard import Guard, Limits, ServedTraffic, too_deep
from backout.store.db import Store

# {key:path}: a key with "/" or an empty one is still a flag lookup (404 FLAG_NOT_FOUND in
# OFREP's shape), not a route miss or a redirect to the bulk endpoint
SINGLE = "/ofrep/v1/evaluate/flags/{key:path}"
BULK = "/ofrep/v1/evaluate/flags"


class BadRequest(Exception):
    def __init__(self, code: ErrorCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def parse_context(body: bytes, max_depth: int) -> dict[str, Any]:
    """The body's ``context`` object; an empty body means an empty context."""
    if not body.strip():
        return {}
    if too_deep(body, max_depth):
        raise BadRequest(
            ErrorCode.PARSE_ERROR, f"the body nests arrays or objects deeper than {max_depth}"
        )
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(ErrorCode.PARSE_ERROR, f"the body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise BadRequest(ErrorCode.PARSE_ERROR, 'the body must be a JSON object {"context": …}')
    context = payload.get("context", {})
    if not isinstance(context, dict):
        raise BadRequest(ErrorCode.INVALID_CONTEXT, "context must be a JSON object")
    try:  # checked here too, so a bulk request with a bad key fails whole (OFREP: 400)
        targeting_key_of(context)
    except TypeError as exc:
        raise BadRequest(ErrorCode.INVALID_CONTEXT, str(exc)) from None
    return context


def etag_of(body: dict[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'


# One member of an If-None-Match list: W/"opaque" or "opaque" (RFC 9110 §8.8.3), else a bare
# token: "*", or an unquoted tag, which the grammar forbids but OFREP's examples use.
_LISTED_TAG = re.compile(r'(?:W/)?"([^"]*)"|([^\s,"]+)')


def not_modified(if_none_match: str, etag: str) -> bool:
    """RFC 9110 §13.1.2: true for ``*`` or for any listed tag that matches ``etag`` by weak
    comparison (``W/`` ignored), so a tag a proxy weakened, or one among several, matches."""
    opaque = etag.removeprefix("W/").strip('"')
    for quoted, bare in _LISTED_TAG.findall(if_none_match):
        if bare == "*" or opaque in (quoted, bare.removeprefix("W/")):
            return True
    return False


def _status(evaluation: Evaluation) -> int:
    if evaluation.error_code is ErrorCode.FLAG_NOT_FOUND:
        return 404
    return 400 if evaluation.error_code else 200


def create_app(
    store: Store,
    *,
    token: str | None = None,
    limits: Limits | None = None,
    traffic: ServedTraffic | None = None,
) -> FastAPI:
    """The app over an open store (the caller owns the store and disposes of it). With a
    ``token``, every request must carry ``Authorization: Bearer <token>``."""
    limits = limits or Limits()
    app = FastAPI(title="backout flags", version=__version__, docs_url=None, redoc_url=None)
    app.add_middleware(Guard, token=token, limits=limits, traffic=traffic or ServedTraffic())

    async def read_context(request: Request) -> dict[str, Any]:
        # parsed off the event loop: a 1 MiB body takes a while, other clients should not wait
        return await run_in_threadpool(parse_context, await request.body(), limits.max_depth)

    def one(key: str, context: dict[str, Any]) -> Evaluation:
        with store.session() as session:
            return evaluate(key, repo.get(session, key), context)

    def every(context: dict[str, Any]) -> list[Evaluation]:
        with store.session() as session:
            return [evaluate(flag.key, flag, context) for flag in repo.all_flags(session)]

    def listing() -> list[dict[str, Any]]:
        with store.session() as session:
            return [flag.to_json() for flag in repo.all_flags(session)]

    def stored(key: str) -> dict[str, Any] | None:
        with store.session() as session:
            flag = repo.get(session, key)
        return flag.to_json() if flag else None

    @app.exception_handler(BadRequest)
    async def _bad_request(request: Request, exc: BadRequest) -> JSONResponse:
        body: dict[str, Any] = {"errorCode": exc.code.value, "errorDetails": exc.details}
        key = request.path_params.get("key")
        return JSONResponse({"key": key, **body} if key is not None else body, status_code=400)

    @app.exception_handler(BackoutError)
    async def _store_trouble(_request: Request, exc: BackoutError) -> JSONResponse:
        return JSONResponse({"errorDetails": exc.message}, status_code=500)

    @app.post(SINGLE)
    async def evaluate_one(key: str, request: Request) -> JSONResponse:
        evaluation = await run_in_threadpool(one, key, await read_context(request))
        return JSONResponse(evaluation.to_ofrep(), status_code=_status(evaluation))

    @app.post(BULK)
    async def evaluate_all(request: Request) -> Response:
        evaluations = await run_in_threadpool(every, await read_context(request))
        body = {"flags": [evaluation.to_ofrep() for evaluation in evaluations]}
        etag = etag_of(body)
        if not_modified(request.headers.get("if-none-match", ""), etag):
            return Response(status_code=304, headers={"ETag": etag})
        return JSONResponse(body, headers={"ETag": etag})

    @app.get("/flags")
    async def list_flags() -> JSONResponse:
        return JSONResponse({"flags": await run_in_threadpool(listing)})

    @app.get("/flags/{key}")
    async def show_flag(key: str) -> JSONResponse:
        flag = await run_in_threadpool(stored, key)
        if flag is None:
            return JSONResponse({"errorDetails": f"flag {key!r} does not exist"}, status_code=404)
        return JSONResponse(flag)

    return app
