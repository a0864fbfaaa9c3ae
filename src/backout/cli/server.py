"""``backout server``: the REST API over the verbs, on the store the settings name."""

from __future__ import annotations

import logging
import signal

import click
from rich.markup import escape

from backout.cli.base import DURATION, err, exit_with, settings_of
from backout.store.dialect import hide_password


@click.command()
@click.option(
    "--listen",
    "address",
    envvar="BACKOUT_SERVER_LISTEN",
    default="127.0.0.1:8017",
    show_default=True,
    metavar="HOST:PORT",
    help="Address to serve on ([::1]:8017 for IPv6; port 0: any free port, printed at start).",
)
@click.option(
    "--open",
    "open_access",
    is_flag=True,
    help="Let requests without a token read, as `anonymous` (role viewer); loopback only.",
)
@click.option(
    "--plans",
    "plans_dir",
    envvar="BACKOUT_SERVER_PLANS",
    metavar="DIR",
    help="The folder of plans (*.yaml) the API may start runs of, by file name; none if unset.",
)
@click.option(
    "--workers",
    default=0,
    show_default=True,
    type=click.IntRange(0, 64),
    envvar="BACKOUT_SERVER_WORKERS",
    help="Worker threads executing runs (started through the API, or orphaned), as "
    "`backout worker` does; servers on one store share the work.",
)
@click.option(
    "--drain",
    default="30s",
    show_default=True,
    type=DURATION,
    help="On SIGTERM, let the workers' steps in flight finish for up to this long.",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    envvar="BACKOUT_SERVER_ACCESS_LOG",
    help="Log each request to stderr: client, actor, method, path, status, duration.",
)
@click.pass_context
def server(
    ctx: click.Context,
    address: str,
    open_access: bool,
    plans_dir: str | None,
    workers: int,
    drain: float,
    access_log: bool,
) -> None:
    """Serve the REST API: runs, live events, trigger, approve, resume, abandon; API tokens.

    Every request needs `Authorization: Bearer <token>` (`backout token create`), unless
    --open. The API is described at /api/v1/docs. Logs go to stderr. Stops gracefully on
    SIGTERM or Ctrl-C: in-flight requests finish, the workers drain (they claim nothing
    new; the run in hand is stopped at a safe point and handed back), then it exits 143
    (SIGTERM) or 130 (SIGINT)."""
    from backout.server import access, listen
    from backout.server.plan_folder import PlanFolder

    logging.getLogger(access.LOGGER).setLevel(logging.INFO if access_log else logging.WARNING)

    settings = settings_of(ctx)
    plans = PlanFolder.of(plans_dir)
    listener = listen.listen(address, open_access=open_access)
    auth = "open: reads need no token" if open_access else "bearer token required"

    def ready() -> None:
        where = escape(hide_password(settings.database_url))
        err.print(
            f"serving the API from {where} on {listener.url} ({auth}); "
            f"docs at {listener.url}/api/v1/docs" + (f"; {workers} worker(s)" if workers else ""),
            soft_wrap=True,
            highlight=False,
        )

    stopped = listen.serve(
        settings,
        listener,
        open_access=open_access,
        plans=plans,
        ready=ready,
        workers=workers,
        drain=drain,
    )
    if stopped is not None:
        err.print(f"server stopped on {signal.Signals(stopped).name}", highlight=False)
        exit_with(128 + stopped)


COMMANDS: list[click.Command] = [server]
