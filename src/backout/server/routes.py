"""The endpoints. Each is a thin layer over a verb of :mod:`backout.commands`: it takes the
request's caller (the token's actor, when its role allows the endpoint) and answers with
the verb's typed result as ``--json`` prints it. Handlers are plain functions: FastAPI
runs them in its thread pool, so a slow store never holds the event loop.

No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations,
and they name dependencies made inside each router's function.
"""

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.responses import StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, Field, model_validator
from sqlalchemy.exc import SQLAlchemyError

from backout import commands
from backout.commands.caller import Caller
from backout.engine.steps import Decision
from backout.errors import StoreError
from backout.kernel.roles import Permission
from backout.metrics import Window
from backout.metrics.prometheus import collector
from backout.render import journal_json
from backout.server import events as live
from backout.server import pages
from backout.server.auth import Gate, needs
from backout.server.live_metrics import LiveCollector
from backout.store.db import HEAD_REVISION

API = "/api/v1"


class TriggerRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, description="Why: journaled and audited.")


class ApproveRequest(BaseModel):
    comment: str = Field("", max_length=2000, description="Kept in the audit trail.")


class AbandonRequest(BaseModel):
    reason: str = Field(
        min_length=1, max_length=2000, description="Why: kept in the journal and audit trail."
    )


Steps = list[Annotated[int, Field(ge=1)]]


class ResumeRequest(BaseModel):
    """What to do with a step that started and never finished, by its number (1-based, as
    `backout status` shows it); as `backout resume --mark-done/--retry/--skip`."""

    mark_done: Steps = Field([], description="The step took effect: record it as succeeded.")
    retry: Steps = Field([], description="Run the step again though it is not idempotent.")
    skip: Steps = Field([], description="Skip the step.")

    @model_validator(mode="after")
    def _one_decision_a_step(self) -> "ResumeRequest":
        numbers = [*self.mark_done, *self.retry, *self.skip]
        twice = sorted({number for number in numbers if numbers.count(number) > 1})
        if twice:
            raise ValueError(f"step {twice[0]} has two decisions")
        return self

    def decisions(self) -> dict[int, Decision]:
        """By the step's index in the plan (0-based), as the verb takes them."""
        chosen: tuple[tuple[list[int], Decision], ...] = (
            (self.mark_done, "done"),
            (self.retry, "retry"),
            (self.skip, "skip"),
        )
        return {number - 1: decision for numbers, decision in chosen for number in numbers}


EVENT_STREAM: dict[int | str, dict[str, Any]] = {
    200: {"content": {live.MEDIA_TYPE: {}}, "description": "Server-Sent Events"}
}


def health(gate: Gate) -> APIRouter:
    router = APIRouter(tags=["health"])
    store = gate.caller.store

    @router.get("/healthz", summary="The process is up (no store access, no token)")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="The store is reachable and its schema current (no token)")
    def readyz() -> dict[str, str]:
        try:
            revision = store.revision()
        except SQLAlchemyError as exc:
            reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
            raise StoreError(
                f"cannot reach store {store.safe_url}: {reason}",
                hint="is the database running, and does the URL name it?",
            ) from None
        if revision != HEAD_REVISION:
            raise StoreError(
                f"store {store.safe_url} is at schema revision {revision!r}, not {HEAD_REVISION!r}",
                hint="restart the server: it brings the store's schema up to date when it starts",
            )
        return {"status": "ready", "schema": revision}

    return router


def runs(gate: Gate) -> APIRouter:
    router = APIRouter(prefix=API, tags=["runs"])
    reader = Annotated[Caller, Depends(needs(gate, Permission.READ))]

    @router.get("/runs", summary="Runs, newest first, a page at a time")
    def list_runs(
        caller: reader,
        limit: Annotated[int, Query(ge=1, le=pages.MAX_LIMIT)] = pages.DEFAULT_LIMIT,
        cursor: Annotated[str | None, Query(description="next_cursor of the last page")] = None,
        service: str | None = None,
        status: str | None = None,
        mode: Annotated[str | None, Query(description=" | ".join(pages.MODES))] = None,
        since: Annotated[str | None, Query(description="30m, 12h, 7d or 2026-11-30")] = None,
    ) -> dict[str, Any]:
        filters = pages.Filters.parse(service, status, mode, since)
        return pages.list_runs(caller, filters, limit, cursor).to_json()

    @router.get("/runs/{run_id}", summary="A run's report (as `backout status --json`)")
    def run_status(caller: reader, run_id: str) -> dict[str, Any]:
        return commands.status(caller, run_id).to_json()

    @router.get("/runs/{run_id}/journal", summary="A run's journal (as `backout journal --json`)")
    def run_journal(caller: reader, run_id: str) -> list[dict[str, Any]]:
        return [journal_json(event) for event in commands.journal(caller, run_id)]

    @router.get("/runs/{run_id}/explain", summary="Why a run did what it did")
    def run_explain(caller: reader, run_id: str) -> dict[str, Any]:
        report, lines = commands.explain_run(caller, run_id)
        return {"run": report.to_json(), "explanation": lines}

    return router


def actions(gate: Gate) -> APIRouter:
    router = APIRouter(prefix=API, tags=["actions"])
    operator = Annotated[Caller, Depends(needs(gate, Permission.OPERATE))]
    approver = Annotated[Caller, Depends(needs(gate, Permission.APPROVE))]

    @router.post(
        "/services/{service}/trigger",
        status_code=202,
        summary="Make the running deploy or watch of a service back out (as `backout trigger`)",
    )
    def trigger(caller: operator, service: str, body: TriggerRequest) -> dict[str, Any]:
        return commands.trigger(caller, service, body.reason).to_json()

    @router.post(
        "/runs/{run_id}/resume",
        summary="Continue an interrupted run, to its end, within the request (as `backout resume`)",
    )
    def resume(caller: operator, run_id: str, body: ResumeRequest | None = None) -> dict[str, Any]:
        decisions = (body or ResumeRequest()).decisions()
        return commands.resume(caller, run_id, decisions).to_json()

    @router.post(
        "/runs/{run_id}/abandon",
        summary="Give up on a run that needs attention (as `backout abandon`)",
    )
    def abandon(caller: operator, run_id: str, body: AbandonRequest) -> dict[str, Any]:
        return commands.abandon(caller, run_id, body.reason).to_json()

    @router.post(
        "/runs/{run_id}/approve",
        status_code=202,
        summary="Approve the checkpoint a deploy waits at (as `backout approve`)",
    )
    def approve(caller: approver, run_id: str, body: ApproveRequest) -> dict[str, Any]:
        return commands.approve(caller, run_id, body.comment).to_json()

    return router


def events(gate: Gate, streams: live.Streams) -> APIRouter:
    router = APIRouter(prefix=API, tags=["events"])
    reader = Annotated[Caller, Depends(needs(gate, Permission.READ))]
    last_event_id = Annotated[
        str | None, Header(alias="Last-Event-ID", description="The id of the last event received")
    ]
    after_query = Annotated[
        str | None,
        Query(alias="after", description="As Last-Event-ID, for clients without headers"),
    ]

    @router.get(
        "/runs/{run_id}/events",
        summary="A run's events live, as Server-Sent Events; ends once the run is over",
        response_class=StreamingResponse,
        responses=EVENT_STREAM,
    )
    def run_events(
        caller: reader, run_id: str, last: last_event_id = None, after: after_query = None
    ) -> StreamingResponse:
        start = live.position(last, after)
        run = commands.status(caller, run_id)  # 404 before the stream opens
        feed = live.RunFeed(caller.store, run.run_id, start or 0)
        return _stream(streams.follow(feed))

    @router.get(
        "/events",
        summary="Every run's events live, as Server-Sent Events (new runs included)",
        response_class=StreamingResponse,
        responses=EVENT_STREAM,
    )
    def all_events(
        caller: reader, last: last_event_id = None, after: after_query = None
    ) -> StreamingResponse:
        feed = live.AllFeed(caller.store, live.position(last, after))
        return _stream(streams.follow(feed))

    return router


def _stream(messages: Any) -> StreamingResponse:
    return StreamingResponse(messages, media_type=live.MEDIA_TYPE, headers=live.HEADERS)


def metrics(gate: Gate) -> APIRouter:
    router = APIRouter(tags=["metrics"])
    reader = Annotated[Caller, Depends(needs(gate, Permission.READ))]

    @router.get(
        "/metrics",
        summary="The store's figures in Prometheus' text format",
        response_class=Response,
    )
    def exposition(caller: reader) -> Response:
        def load() -> Any:
            return commands.metrics(caller, Window(None, time.time())).data

        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector(load))
        registry.register(LiveCollector(caller.store))
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
