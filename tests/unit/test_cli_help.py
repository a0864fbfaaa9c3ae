"""Every command says how to use it: each option has help text, and every command's
``--help`` (subcommands of every group included) lists its exit codes and the environment
variables it reads. The walk covers commands added later too, so a new one without help
fails here."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from backout.cli import cli
from backout.cli.conventions import ENVIRONMENT, GLOBAL_ENVIRONMENT, environment, exit_codes

SRC = Path(__file__).resolve().parents[2] / "src" / "backout"
# read by tests and by the code's own machinery, never by a user's command
NOT_FOR_USERS = {
    "BACKOUT_FAILPOINTS",  # crash tests kill the process at a named point
    "BACKOUT_TEST_POSTGRES_URL",
    "BACKOUT_REQUIRE_SERVICES",
    "BACKOUT_DEMO_PORT",  # the demo's own sample service
    "BACKOUT_DEMO_INBOX_PORT",
    "BACKOUT_DEMO_OWNER_PID",
    "BACKOUT_ALEMBIC_URL",  # handed to a step's own processes, read there
    "BACKOUT_ANSIBLE_RESULTS",
}


def subcommands(group: click.Group) -> dict[str, click.Command]:
    """A group's commands as click finds them (the root group loads its own lazily)."""
    ctx = click.Context(group)
    found = {name: group.get_command(ctx, name) for name in group.list_commands(ctx)}
    return {name: sub for name, sub in found.items() if sub is not None}


def walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, click.Group):
        for name, sub in sorted(subcommands(command).items()):
            yield from walk(sub, (*path, name))


def command_at(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = subcommands(command)[name]
    return command


PATHS = list(walk(cli))


def test_the_walk_reaches_nested_groups() -> None:
    names = {" ".join(p) for p in PATHS}
    assert {"runs", "change approve", "audit verify", "outbox send", "flags serve"} <= names
    assert {"snapshots", "abandon", "completion"} <= names
    assert len(PATHS) > 50


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "backout")
def test_every_option_has_help(path: tuple[str, ...]) -> None:
    command = command_at(path)
    missing = [
        "/".join(param.opts)
        for param in command.params
        if isinstance(param, click.Option) and param.name != "help" and not param.help
    ]
    assert not missing, f"backout {' '.join(path)}: options without help: {missing}"
    assert (command.help or command.short_help or "").strip(), "the command says what it does"


@pytest.mark.parametrize("path", [p for p in PATHS if p], ids=" ".join)
def test_every_help_lists_exit_codes_and_environment(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    text = result.output
    assert "Exit codes:" in text, text
    assert "Environment:" in text, text
    for code, meaning in exit_codes(" ".join(path)):
        assert re.search(rf"^\s+{code}\s+{re.escape(meaning[:30])}", text, re.M), (code, text)
    for name in GLOBAL_ENVIRONMENT:
        assert name in text.split("Environment:")[1]
    unexplained = [
        n for n, what in environment(" ".join(path), command_at(path)).items() if not what
    ]
    assert not unexplained, f"describe in backout.cli.conventions.ENVIRONMENT: {unexplained}"


def test_an_option_s_variable_is_listed_with_its_command() -> None:
    """The variables a command's options read (``envvar=``, or named in their help)."""
    deploy = CliRunner().invoke(cli, ["deploy", "--help"]).output.split("Environment:")[1]
    assert "BACKOUT_ENV" in deploy
    assert "BACKOUT_LISTEN_TOKEN" in deploy
    gate = CliRunner().invoke(cli, ["gate", "--help"]).output.split("Environment:")[1]
    assert "BACKOUT_POLICY" in gate
    assert "BACKOUT_LISTEN_TOKEN" not in gate
    send = CliRunner().invoke(cli, ["outbox", "send", "--help"]).output
    assert "BACKOUT_OUTBOX_TOKEN" in send.split("Environment:")[1]


def test_codes_that_differ_are_the_command_s_own() -> None:
    gate = CliRunner().invoke(cli, ["gate", "--help"]).output
    assert re.search(r"^\s+1\s+a policy check fails", gate, re.M)
    validate = CliRunner().invoke(cli, ["validate", "--help"]).output
    assert not re.search(r"^\s+3\s", validate, re.M)
    watch = CliRunner().invoke(cli, ["watch", "--help"]).output
    assert re.search(r"^\s+4\s+a trigger fired", watch, re.M)


def test_every_variable_the_code_reads_is_described() -> None:
    """A BACKOUT_* variable read anywhere in the source has a line in the table the help
    draws from (or is a test hook), so the help cannot leave one out unexplained."""
    read: set[str] = set()
    pattern = re.compile(r"\b(BACKOUT_[A-Z][A-Z_]*[A-Z])\b")
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):  # in strings: not a constant's name
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                read |= set(pattern.findall(node.value))
    # the variables a step receives (BACKOUT_BASELINE_RELEASE …) are written, not read
    read = {n for n in read if not n.startswith(("BACKOUT_BASELINE", "BACKOUT_SECRET"))}
    options = {  # an option's variable is described as the option, in its command's help
        str(param.envvar)
        for path in PATHS
        for param in command_at(path).params
        if isinstance(param.envvar, str)
    }
    undescribed = read - set(ENVIRONMENT) - options - NOT_FOR_USERS
    assert not undescribed, f"add these to backout.cli.conventions.ENVIRONMENT: {undescribed}"
