"""``backout config``: the settings a command would use, and where each came from."""

from __future__ import annotations

import click
from rich.markup import escape

from backout.cli.base import caller_of, json_option, out, settings_of
from backout.render import print_json


@click.command("config")
@json_option
@click.pass_context
def config(ctx: click.Context, as_json: bool) -> None:
    """Show the effective settings (store, actor, lease ttl, heartbeat, notify defaults) and
    where each came from: an option, an environment variable, the configuration file, or the
    default. A store URL's password is shown as ***. The configuration file's [notify]
    defaults are validated here as a plan's are."""
    from backout.store.dialect import hide_password

    settings = settings_of(ctx)
    defaults = caller_of(ctx, create=False).notify  # validates [notify]; opens no store
    channels = sorted(defaults.channels) if defaults else []
    shown = {
        "config_file": settings.config_file,
        "database_url": hide_password(settings.database_url),
        "actor": settings.actor,
        "lease_ttl": settings.lease_ttl,
        "heartbeat": settings.heartbeat,
        "notify_channels": channels,
        "notify_routes": len(defaults.routes) if defaults else 0,
        "sources": settings.sources,
    }
    if as_json:
        print_json(out, shown)
        return
    out.print(f"config file   {escape(settings.config_file or '(none found)')}")
    for name in ("database_url", "actor", "lease_ttl", "heartbeat"):
        value = shown[name]
        out.print(f"{name:<13} {escape(str(value))}  [dim]({settings.sources.get(name)})[/]")
    if defaults:
        out.print(
            f"notify        channels {escape(', '.join(channels))}; "
            f"{len(defaults.routes)} route(s)  [dim]({settings.sources.get('notify')})[/]"
        )


COMMANDS: list[click.Command] = [config]
