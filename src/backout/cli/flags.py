"""Feature flags: list, get, set, and serve them to apps over OFREP."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, NoReturn

import click
from pydantic import ValidationError
from rich.markup import escape

from backout import commands
from backout.cli.base import caller_of, err, exit_with, json_option, out, settings_of
from backout.errors import UsageError
from backout.flags.model import FlagChange, FlagState
from backout.render import clock, print_json
from backout.store.dialect import hide_password

if TYPE_CHECKING:
    from backout.flags.listen import ServeStopped


def _flag_line(flag: FlagState) -> str:
    state = "[green]on[/]" if flag.enabled else "[red]off[/]"
    return (
        f"[bold]{escape(flag.key)}[/] {state} {flag.percentage}% · serves "
        f"{escape(flag.on_variant)} / {escape(flag.off_variant)} · version {flag.version} · "
        f"{clock(flag.updated_at)} by {escape(flag.updated_by)}"
    )


def _variant(text: str) -> tuple[str, Any]:
    """``NAME=VALUE``: VALUE as JSON when it parses (true, 3, {"a": 1}), else as text
    (NaN and Infinity, which Python's parser would take, are not JSON: they stay text)."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise UsageError(
            f"--variant {text!r}: write NAME=VALUE",
            hint="e.g. --variant blue='\"#00f\"' (VALUE is JSON when it parses, else text)",
        )
    try:
        value = json.loads(raw, parse_constant=_not_json)
    except ValueError:  # JSONDecodeError, or NaN/Infinity
        return name, raw
    if value is None:
        raise UsageError(
            f"--variant {text!r}: null is not a value apps can be served (OFREP has boolean, "
            "string, number and object values)",
            hint=f"for the text null write --variant {name}='\"null\"'; to serve nothing "
            "new, turn the flag off (--off)",
        )
    return name, value


def _not_json(constant: str) -> NoReturn:
    raise ValueError(f"{constant} is not JSON")


@click.group()
def flags() -> None:
    """Feature flags in the backout store, served to apps over OpenFeature's OFREP."""


@flags.command("list")
@json_option
@click.pass_context
def flags_list(ctx: click.Context, as_json: bool) -> None:
    """Every flag with its state."""
    rows = commands.flags.list_flags(caller_of(ctx, create=False))
    if as_json:
        print_json(out, [flag.to_json() for flag in rows])
        return
    if not rows:
        out.print("no flags yet; create one with `backout flags set KEY --off`")
        return
    for flag in rows:
        out.print(_flag_line(flag), soft_wrap=True)


@flags.command("get")
@click.argument("key")
@click.option(
    "--for", "targeting_key", metavar="TARGETING-KEY", help="Also evaluate it for this key."
)
@json_option
@click.pass_context
def flags_get(ctx: click.Context, key: str, targeting_key: str | None, as_json: bool) -> None:
    """Show one flag (and, with --for, what it answers for a targeting key)."""
    caller = caller_of(ctx, create=False)
    flag = commands.flags.get_flag(caller, key)
    evaluation = None
    if targeting_key is not None:
        evaluation = commands.flags.evaluate_flag(caller, key, {"targetingKey": targeting_key})
    if as_json:
        data = flag.to_json()
        if evaluation:
            data["evaluation"] = evaluation.to_ofrep()
        print_json(out, data)
        return
    out.print(_flag_line(flag), soft_wrap=True)
    for name, value in flag.variants.items():
        out.print(f"  variant {escape(name)} = {escape(json.dumps(value))}")
    if evaluation:
        value = "the app's code default" if evaluation.code_default else evaluation.value
        out.print(
            f"for {escape(targeting_key or '')}: {escape(str(evaluation.variant))} = "
            f"{escape(json.dumps(value))} ({evaluation.reason.value})"
        )


@flags.command("set")
@click.argument("key")
@click.option("--on/--off", "enabled", default=None, help="Turn the flag on, or off (kill switch).")
@click.option(
    "--percentage",
    type=click.IntRange(0, 100),
    help="Share of targeting keys (0-100) that get the on variant while on.",
)
@click.option(
    "--variant",
    "variants",
    multiple=True,
    metavar="NAME=VALUE",
    help="Replace the variants (repeat; VALUE is JSON or text). Default on=true, off=false.",
)
@click.option("--on-variant", metavar="NAME", help="Variant served when on.")
@click.option("--off-variant", metavar="NAME", help="Variant served when off or not selected.")
@json_option
@click.pass_context
def flags_set(
    ctx: click.Context,
    key: str,
    enabled: bool | None,
    percentage: int | None,
    variants: tuple[str, ...],
    on_variant: str | None,
    off_variant: str | None,
    as_json: bool,
) -> None:
    """Create or change a flag; every change is written to the audit trail."""
    try:
        change = FlagChange(
            enabled=enabled,
            percentage=percentage,
            variants=dict(_variant(text) for text in variants) if variants else None,
            on_variant=on_variant,
            off_variant=off_variant,
        )
    except ValidationError as exc:
        problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise UsageError(
            f"flags set {key}: {problems}", hint="give --on/--off, --percentage or --variant"
        ) from None
    update = commands.flags.set_flag(caller_of(ctx), key, change)
    if as_json:
        before = update.before.to_json() if update.before else None
        print_json(out, {"before": before, "after": update.after.to_json()})
        return
    out.print(_flag_line(update.after), soft_wrap=True)


@flags.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8016,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port, printed at start).",
)
@click.option(
    "--token-file",
    metavar="PATH",
    help="Require Authorization: Bearer <the token in this file> (or set BACKOUT_FLAGS_TOKEN).",
)
@click.option(
    "--no-token",
    "allow_no_token",
    is_flag=True,
    help="Serve a non-loopback address without a token (only behind an authenticating proxy).",
)
@click.pass_context
def flags_serve(
    ctx: click.Context, host: str, port: int, token_file: str | None, allow_no_token: bool
) -> None:
    """Serve flags to apps: OFREP at /ofrep/v1/evaluate/flags[/KEY], a list at /flags.

    Stops gracefully on SIGTERM or Ctrl-C: in-flight requests finish, then it exits 143
    (SIGTERM) or 130 (SIGINT)."""
    from backout.flags import listen

    settings = settings_of(ctx)
    token = listen.load_token(token_file, os.environ.get(listen.TOKEN_ENV))
    listener = listen.listen(host, port, token, allow_no_token=allow_no_token)
    auth = "bearer token required" if token else "no token"

    def ready() -> None:
        if listener.warning:
            err.print(f"[red bold]{escape(listener.warning)}[/]", soft_wrap=True)
        where = hide_password(settings.database_url)
        out.print(f"serving flags from {where} on {listener.url} ({auth})", soft_wrap=True)

    stopped = listen.serve(settings.database_url, listener, ready=ready)
    if stopped.signal is not None:
        _say_stopped(stopped)


def _say_stopped(stopped: ServeStopped) -> NoReturn:
    traffic = stopped.traffic
    finished = (
        f"{traffic.cut_off} request(s) cut off after the grace period"
        if traffic.cut_off
        else "in-flight requests finished"
    )
    out.print(
        f"flags serve stopped on {stopped.signal_name}: {finished}; "
        f"{traffic.handled} request(s) handled",
        soft_wrap=True,
    )
    exit_with(128 + (stopped.signal or 0))


COMMANDS: list[click.Command] = [flags]
