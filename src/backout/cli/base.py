"""What every command group shares: the root click group, whose ``invoke`` turns an
error into its message and exit code once for every command, the consoles, the JSON
option, the duration type, live progress with a graceful stop, and the end of a run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import import_module
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from backout import __version__, heap
from backout.cli.catalog import CATALOG
from backout.cli.conventions import document
from backout.errors import BackoutError, PlanError
from backout.kernel.durations import parse_duration
from backout.render import Progress, print_issues, print_json, print_run
from backout.stop import Stopped, on_signals

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

    from backout.commands.caller import Caller
    from backout.reports import RunReport
    from backout.settings import Settings

# emoji=False: user text such as ``plan.yaml:100:5`` must never turn into 💯
out = Console(highlight=False, emoji=False)
err = Console(stderr=True, highlight=False, emoji=False)
ENGINE_SWITCH_INTERVAL_S = 0.0005  # sys.setswitchinterval while a command runs steps


def follow_the_terminal() -> None:
    """Size the consoles by the terminal (or ``COLUMNS``) as it is now. Rich fixes a
    console's width from ``COLUMNS`` when the console is made, at import: a process that
    imported this module once (a test runner, a server) would keep that width for every
    command after."""
    for console in (out, err):
        console._width = None  # Rich has no public way to unfix it


@contextmanager
def handle_errors() -> Iterator[None]:
    """Turn BackoutError into a message and its exit code; never show a traceback."""
    try:
        yield
    except PlanError as exc:
        print_issues(err, exc.issues)
        sys.exit(exc.exit_code)
    except BackoutError as exc:
        err.print(f"[red]error[/]: {escape(str(exc))}", soft_wrap=True)
        sys.exit(exc.exit_code)
    except Stopped as stop:
        err.print(escape(stopped_line(stop)), soft_wrap=True)
        sys.exit(stop.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


def stopped_line(stop: Stopped) -> str:
    where = f" {stop.where}" if stop.where else ""
    if stop.run_id is None:
        return f"stopped by {stop.name}{where}"
    steps = (
        "a step may still be finishing in this process as it exits"
        if stop.abandoned
        else "its steps stopped"
    )
    return (
        f"stopped by {stop.name}{where}: run {stop.run_id} is interrupted, {steps}; "
        f"continue it with `backout resume {stop.run_id}`"
    )


class BackoutGroup(click.Group):
    """The root group. Every subcommand (and every nested group's) runs inside its
    ``invoke``, so errors are reported here once instead of by a decorator per command.

    Commands load lazily (click's "lazy group"): the group knows every command's name,
    module and short help from :data:`~backout.cli.catalog.CATALOG`, lists them in
    ``--help`` and in shell completion from there, and imports a command's module only
    when that command is looked up to run or to show its own help."""

    def invoke(self, ctx: click.Context) -> Any:
        follow_the_terminal()
        with handle_errors():
            return super().invoke(ctx)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        """Attach a command; its ``--help`` (and its subcommands') ends with the exit codes
        and the environment variables it reads (:mod:`.conventions`)."""
        super().add_command(cmd, name)
        document(cmd, name or cmd.name or "")

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """The command to run, loaded; start-up ends here (:func:`backout.heap.release`)."""
        found = super().resolve_command(ctx, args)
        heap.release()
        return found

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *CATALOG})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in CATALOG:
            module = import_module(CATALOG[cmd_name].module)
            found = [c for c in module.COMMANDS if c.name == cmd_name]
            if len(found) != 1:  # a catalog that lies: tests/unit/test_cli_catalog.py
                raise RuntimeError(f"{module.__name__}.COMMANDS has no command {cmd_name!r}")
            self.add_command(found[0])
        return self.commands.get(cmd_name)

    def listed(self, ctx: click.Context) -> list[tuple[str, click.Command]]:
        """Every visible command, without loading any: a command not loaded yet stands in
        as a bare command with its short help from the catalog."""
        listed = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name) or click.Command(name, help=CATALOG[name].help)
            if not command.hidden:
                listed.append((name, command))
        return listed

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``--help``, as click draws it, from :meth:`listed`."""
        commands = self.listed(ctx)
        if commands:
            limit = formatter.width - 6 - max(len(name) for name, _ in commands)
            with formatter.section("Commands"):
                formatter.write_dl([(n, c.get_short_help_str(limit)) for n, c in commands])

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """Complete a command name from :meth:`listed` (no command is loaded for it), then
        the group's own options."""
        from click.shell_completion import CompletionItem

        found = [
            CompletionItem(name, help=command.get_short_help_str())
            for name, command in self.listed(ctx)
            if name.startswith(incomplete)
        ]
        return found + click.Command.shell_complete(self, ctx, incomplete)

    def load_all(self, ctx: click.Context | None = None) -> None:
        """Import every command now (a process that forks a child per command)."""
        context = ctx or click.Context(self)
        for name in self.list_commands(context):
            self.get_command(context, name)


@contextmanager
def live_progress(
    ctx: click.Context, enabled: bool, drain: float = 0.0
) -> Iterator[Progress | None]:
    """Step-by-step progress on stderr, and a graceful stop on SIGTERM or Ctrl-C: running
    steps are stopped (after ``drain`` seconds), the run is journalled as stopped, its
    lease released, and the command exits 143 (130 for Ctrl-C) saying how to resume.
    Meanwhile the run's notifications are delivered in the background (plan ``notify:``),
    and given a few seconds to go out when the run ends."""
    from backout.engine import failpoints
    from backout.notify import Courier

    # A step's journal write waits for the disk with the GIL let go; the courier or the store
    # watcher may take it meanwhile, and Python hands it back only every switch interval
    # (5 ms by default). A process that runs steps wants it back sooner.
    sys.setswitchinterval(ENGINE_SWITCH_INTERVAL_S)
    progress = Progress(err) if enabled else None
    # a failpoint's kill (a crash test's) comes after the lines up to it are shown
    forget = failpoints.before_kill(progress.flush) if progress else None
    courier = Courier(caller_of(ctx).store, caller_of(ctx).actor)
    try:
        with courier, on_signals(drain):
            yield progress
    finally:
        if forget:
            forget()
        if progress:
            progress.close()
        left = courier.leftover
        if left.pending:
            why = f" ({'; '.join(left.errors)})" if left.errors else ""
            err.print(
                escape(
                    f"{left.pending} notification(s) not delivered yet{why}; "
                    "`backout notify send` goes on trying"
                ),
                soft_wrap=True,
            )


def settings_of(ctx: click.Context) -> Settings:
    return ctx.ensure_object(dict)["settings"]  # type: ignore[no-any-return]


def caller_of(ctx: click.Context, *, create: bool = True) -> Caller:
    """The caller every verb takes: the store named by --db (opened on first use, once
    for the process, disposed when the command ends) and the actor. Commands that only
    read pass ``create=False``: a missing store is then an error, never created."""
    from backout.commands.caller import Caller

    state = ctx.ensure_object(dict)
    if "caller" not in state:
        caller = Caller.of(settings_of(ctx), create=create)
        ctx.find_root().call_on_close(caller.store.dispose)
        state["caller"] = caller
    return state["caller"]  # type: ignore[no-any-return]


max_attempts_option = click.option(
    "--max-attempts",
    default=10,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Tries per event before it is dead-lettered (kept; `backout outbox retry --dead`).",
)

F = TypeVar("F", bound=Callable[..., Any])


def send_options(command: F) -> F:
    """The options of every command that delivers the outbox: how long to keep trying,
    the first retry delay, the tries before dead-lettering, one pass only."""
    for option in reversed(
        [
            click.option(
                "--timeout",
                default="60s",
                show_default=True,
                type=DURATION,
                help="Keep retrying this long (30s, 10m).",
            ),
            click.option(
                "--retry-delay",
                default="1s",
                show_default=True,
                type=Duration(minimum=0.01),
                help="First retry delay (500ms, 2s); doubles, with jitter, up to 5 minutes.",
            ),
            max_attempts_option,
            click.option("--once", is_flag=True, help="One pass: send what is due, then exit."),
        ]
    ):
        command = option(command)
    return command


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
env_option = click.option(
    "--env",
    "environment",
    envvar="BACKOUT_ENV",
    metavar="NAME",
    help="The plan's environment to act on (required when it declares `environments:`; "
    "env BACKOUT_ENV).",
)


class Duration(click.ParamType):  # type: ignore[type-arg]
    """A plan-style duration on the command line: ``500ms``, ``10s``, ``2m``, ``1h`` (a bare
    number is seconds), at least ``minimum``."""

    name = "duration"

    def __init__(self, minimum: float = 0.0) -> None:
        self.minimum = minimum

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            seconds = value
        else:
            try:
                seconds = parse_duration(value)
            except ValueError as exc:
                self.fail(str(exc), param, ctx)
        if seconds < self.minimum:
            self.fail(f"{value!r} is shorter than the minimum of {self.minimum:g}s", param, ctx)
        return seconds


DURATION = Duration()


def exit_with(code: int) -> NoReturn:
    """End the command with an outcome's exit code (errors have theirs in the error tree;
    results carry theirs as ``exit_code``: runs, gates, audit verification, the outbox)."""
    click.get_current_context().exit(code)


def finish(report: RunReport, as_json: bool) -> NoReturn:
    """Print a run's report and exit with its outcome's code."""
    if as_json:
        print_json(out, report.to_json())
    else:
        print_run(out, report)
    exit_with(report.exit_code)


@click.group(cls=BackoutGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="backout")
@click.option(
    "--db",
    envvar="BACKOUT_DATABASE_URL",
    metavar="URL",
    help="Store URL (default sqlite:///.backout/backout.db; env BACKOUT_DATABASE_URL).",
)
@click.option("--actor", envvar="BACKOUT_ACTOR", help="Who is acting (default: the OS user).")
@click.option(
    "--config",
    envvar="BACKOUT_CONFIG",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Configuration file (default: the nearest backout.toml, or pyproject.toml with "
    "[tool.backout]; env BACKOUT_CONFIG). See `backout config`.",
)
@click.pass_context
def cli(ctx: click.Context, db: str | None, actor: str | None, config: str | None) -> None:
    """Backout plans as code: validate, snapshot, run, resume and verify a way back."""
    from backout.settings import Settings

    given = click.core.ParameterSource.COMMANDLINE
    with handle_errors():  # an option given in the environment is the environment's
        ctx.ensure_object(dict)["settings"] = Settings.load(
            db if ctx.get_parameter_source("db") is given else None,
            actor if ctx.get_parameter_source("actor") is given else None,
            config,
        )
