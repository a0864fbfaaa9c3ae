"""The API app: the routes of :mod:`backout.server.routes` behind token auth
(:mod:`backout.server.auth`), every error as problem+json (:mod:`backout.server.problems`).
OpenAPI at ``/api/v1/openapi.json``, interactive docs at ``/api/v1/docs``; the dashboard
(:mod:`backout.server.web`, :mod:`.web_actions`, :mod:`.web_pages`) at ``/``.
"""

from __future__ import annotations

from fastapi import FastAPI

from backout import __version__
from backout.commands.caller import Caller
from backout.plans import notify_defaults
from backout.server import (
    api_alerts,
    api_changes,
    api_docs,
    api_plans,
    api_records,
    api_start,
    problems,
    routes,
    web,
    web_actions,
    web_pages,
)
from backout.server.access import AccessLog
from backout.server.auth import Gate
from backout.server.events import Streams
from backout.server.plan_folder import PlanFolder
from backout.server.upkeep import StartUpkeep, Timing, Upkeep
from backout.settings import Settings
from backout.store.db import Store

DESCRIPTION = (
    "The verbs of the `backout` CLI over HTTP, on the same store. Send an API token as "
    "`Authorization: Bearer bo_…` (`backout token create --role ROLE --actor NAME`); "
    "errors are RFC 9457 problem+json."
)


def create_app(
    store: Store,
    settings: Settings,
    *,
    open_access: bool = False,
    streams: Streams | None = None,
    plans: PlanFolder | None = None,
    upkeep: Timing | None = None,
) -> FastAPI:
    """The app over ``store`` (the caller owns it and disposes of it). ``open_access``: a
    request without a token reads as ``anonymous`` (viewer); the CLI allows it on loopback
    addresses only. ``streams``: its live event streams, for the server to end them when it
    stops (``streams.stop()``). ``plans``: the plans the API may start runs of
    (``--plans DIR``); none by default. ``upkeep``: the intervals of the server's own sweeps
    (:mod:`backout.server.upkeep`: quiet incidents, the audit chain), which run from the
    app's first event until its event loop ends."""
    defaults = None
    if settings.notify_defaults is not None:
        defaults = notify_defaults(settings.notify_defaults, settings.config_file or "")
    base = Caller(store, settings.actor, settings.lease_ttl, defaults, settings.heartbeat)
    gate = Gate(base, open_access)
    folder = plans or PlanFolder()
    app = FastAPI(
        title="backout",
        version=__version__,
        description=DESCRIPTION,
        openapi_url=f"{routes.API}/openapi.json",
        docs_url=None,  # api_docs serves them, with no asset from elsewhere
        redoc_url=None,
    )
    app.state.plans = folder
    app.add_middleware(AccessLog)
    sweeps = app.state.upkeep = Upkeep(base, upkeep)
    app.add_middleware(StartUpkeep, upkeep=sweeps)
    api_docs.install(app, f"{routes.API}/docs", f"{routes.API}/openapi.json")
    problems.install(app)
    for router in (routes.health, routes.runs, routes.actions, routes.metrics):
        app.include_router(router(gate))
    app.include_router(routes.events(gate, streams or Streams()))
    app.include_router(api_alerts.alerts(gate))
    app.include_router(api_start.start(gate, folder))
    for with_plans in (api_changes.changes, api_changes.rehearsals, api_plans.plans):
        app.include_router(with_plans(gate, folder))
    api_records.install(app, gate, folder)
    web.install(app, gate)
    web_actions.install(app, gate)
    web_pages.install(app, gate, sweeps.chain)
    return app
