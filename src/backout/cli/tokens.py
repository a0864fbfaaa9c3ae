"""``backout token``: make, list and revoke the API tokens a server accepts."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape
from rich.table import Table

from backout import commands
from backout.cli.base import caller_of, err, json_option, out
from backout.kernel.durations import MAX_SECONDS, parse_duration
from backout.kernel.roles import Role
from backout.render import clock, print_json

if TYPE_CHECKING:
    from backout.reports import CreatedToken, TokenSummary

_DAYS = re.compile(r"\s*(\d+(?:\.\d+)?)\s*d\s*")
DAY = 86400.0


class Lifetime(click.ParamType):  # type: ignore[type-arg]
    """How long a token is valid: days (``90d``), a plan duration (``12h``, ``30m``), or
    ``never``; as seconds, None for never."""

    name = "lifetime"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float | None:
        if value is None or isinstance(value, float):
            return value
        text = str(value).strip().lower()
        if text == "never":
            return None
        days = _DAYS.fullmatch(text)
        try:
            seconds = float(days.group(1)) * DAY if days else parse_duration(text)
        except ValueError:
            self.fail(
                f"{value!r} is not a lifetime; expected e.g. 90d, 12h, 30m or never", param, ctx
            )
        if not 0 < seconds < MAX_SECONDS:
            self.fail(
                f"{value!r}: a token must live more than 0s and less than 30 years", param, ctx
            )
        return seconds


@click.group(name="token")
def token_group() -> None:
    """API tokens: each acts as one actor with one role (viewer, operator, approver, admin).

    A token is shown once, when it is made; the store keeps only its SHA-256. Making and
    revoking one are audited. See docs/server.md, "Tokens and roles"."""


@token_group.command("create")
@click.option(
    "--role",
    required=True,
    type=click.Choice([role.value for role in Role], case_sensitive=False),
    help="What the token may do: viewer (read), operator (read, start, resume, trigger, "
    "abandon, ack), approver (read, approve), admin (everything, tokens and policy too).",
)
@click.option(
    "--actor",
    "holder",
    required=True,
    metavar="NAME",
    help="Who requests made with the token act as, in the journal and the audit trail "
    "(the root --actor is who makes the token).",
)
@click.option(
    "--expires",
    default="90d",
    show_default=True,
    type=Lifetime(),
    help="How long the token is valid: 30d, 12h, 45m, or `never` (until revoked).",
)
@click.option("--name", default="", metavar="TEXT", help="A label: what or whom it is for.")
@json_option
@click.pass_context
def token_create(
    ctx: click.Context,
    role: str,
    holder: str,
    expires: float | None,
    name: str,
    as_json: bool,
) -> None:
    """Make a token and print it, once: it is not shown again. The token alone goes to
    standard output, so `> FILE` keeps it; what it is goes to standard error."""
    created = commands.create_token(caller_of(ctx), role, holder, expires, name)
    if as_json:
        print_json(out, created)
        return
    err.print(escape(_made(created, expires)), soft_wrap=True)
    out.print(created.secret, soft_wrap=True)
    err.print(
        "[yellow]warning[/]: copy the token now: it is not shown again "
        "(the store keeps only its SHA-256)",
        soft_wrap=True,
    )


@token_group.command("list")
@json_option
@click.pass_context
def token_list(ctx: click.Context, as_json: bool) -> None:
    """List the tokens, newest first, revoked and expired ones too; never their secrets."""
    rows = commands.list_tokens(caller_of(ctx, create=False))
    if as_json:
        print_json(out, rows)
    elif rows:
        out.print(_table(rows))
    else:
        out.print("no tokens; make one with `backout token create`")


@token_group.command("revoke")
@click.argument("token_id", metavar="ID", type=int)
@click.option(
    "--reason",
    default="",
    metavar="TEXT",
    help="Why it is revoked (required; kept with the token and in the audit trail).",
)
@json_option
@click.pass_context
def token_revoke(ctx: click.Context, token_id: int, reason: str, as_json: bool) -> None:
    """Revoke token ID (as `backout token list` numbers it): it is refused from now on."""
    revoked = commands.revoke_token(caller_of(ctx), token_id, reason)
    if as_json:
        print_json(out, revoked)
        return
    out.print(
        escape(
            f"token #{revoked.id} ({revoked.prefix}…, {revoked.actor}, {revoked.role}) revoked: "
            "it is refused from now on"
        ),
        soft_wrap=True,
    )


def _made(created: CreatedToken, lifetime: float | None) -> str:
    label = f" ({created.name})" if created.name else ""
    if created.expires_at is None or lifetime is None:
        until = "never expires (revoke it with `backout token revoke`)"
    else:
        until = f"expires {clock(created.expires_at)} UTC (in {_span(lifetime)})"
    return f"token #{created.id}{label} acts as {created.actor} with role {created.role}; {until}:"


def _span(seconds: float) -> str:
    """``90d``, ``12h``, ``30m``, ``45s``: in the largest unit it reaches (to a tenth)."""
    for unit, size in (("d", DAY), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size:
            return f"{round(seconds / size, 1):g}{unit}"
    return f"{max(seconds, 0.0):.0f}s"


def _table(rows: list[TokenSummary]) -> Table:
    now = time.time()
    table = Table(box=None, pad_edge=False)
    for column in ("id", "token", "role", "status"):
        table.add_column(column, no_wrap=True, justify="right" if column == "id" else "left")
    table.add_column("actor")
    table.add_column("expires (UTC)", no_wrap=True)
    table.add_column("last used", no_wrap=True)
    table.add_column("name")
    for row in rows:
        table.add_row(
            str(row.id),
            escape(f"{row.prefix}…"),
            row.role,
            row.status,
            escape(row.actor),
            "never" if row.expires_at is None else clock(row.expires_at)[:16],
            "never" if row.last_used_at is None else f"{_span(now - row.last_used_at)} ago",
            escape(row.name) or "-",
        )
    return table


COMMANDS: list[click.Command] = [token_group]
