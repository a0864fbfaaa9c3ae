"""``backout server``: the REST API over the verbs, on the store the settings name."""

from __future__ import annotations

import signal

import click
from rich.markup import escape

from backout.cli.base import err, exit_with, settings_of
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
@click.pass_context
def server(ctx: click.Context, address: str, open_access: bool, plans_dir: str | None) -> None:
    """Serve the REST API: runs, live events, trigger, approve, resume, abandon; API tokens.

    Every request needs `Authorization: Bearer <token>` (`backout token create`), unless
    --open. The API is described at /api/v1/docs. Logs go to stderr. Stops gracefully on
    SIGTERM or Ctrl-C: in-flight requests finish, then it exits 143 (SIGTERM) or 130
    (SIGINT)."""
    from backout.server import listen
    from backout.server.plan_folder import PlanFolder

    settings = settings_of(ctx)
    plans = PlanFolder.of(plans_dir)
    listener = listen.listen(address, open_access=open_access)
    auth = "open: reads need no token" if open_access else "bearer token required"

    def ready() -> None:
        where = escape(hide_password(settings.database_url))
        err.print(
            f"serving the API from {where} on {listener.url} ({auth}); "
            f"docs at {listener.url}/api/v1/docs",
            soft_wrap=True,
            highlight=False,
        )

    stopped = listen.serve(settings, listener, open_access=open_access, plans=plans, ready=ready)
    if stopped is not None:
        err.print(f"server stopped on {signal.Signals(stopped).name}", highlight=False)
        exit_with(128 + stopped)


COMMANDS: list[click.Command] = [server]
