"""The catalog the root group lists commands from (:mod:`backout.cli.catalog`) is the
commands' own: every command of every CLI module is in it, under the module that defines
it, with the short help the command itself would show at any width. A new command, or a
changed first sentence, fails here until the catalog says the same."""

from __future__ import annotations

import pkgutil
from importlib import import_module

import click
import pytest
from click.testing import CliRunner

import backout.cli
from backout.cli import cli
from backout.cli.catalog import CATALOG


def defined() -> dict[str, tuple[str, click.Command]]:
    """Every command in a ``COMMANDS`` list of a module of backout.cli: name -> (module,
    command)."""
    found: dict[str, tuple[str, click.Command]] = {}
    for info in pkgutil.iter_modules(backout.cli.__path__, "backout.cli."):
        module = import_module(info.name)
        for command in getattr(module, "COMMANDS", []):
            assert command.name not in found, f"two commands named {command.name}"
            found[str(command.name)] = (info.name, command)
    return found


DEFINED = defined()


def test_the_catalog_names_every_command_and_its_module() -> None:
    assert {name: entry.module for name, entry in CATALOG.items()} == {
        name: module for name, (module, _) in DEFINED.items()
    }


@pytest.mark.parametrize("name", sorted(DEFINED))
def test_the_catalog_s_short_help_is_the_command_s(name: str) -> None:
    _, command = DEFINED[name]
    assert not command.hidden  # the catalog cannot say so
    assert not command.deprecated
    stand_in = click.Command(name, help=CATALOG[name].help)
    for width in (20, 45, 60, 80, 200, 10**6):  # as `--help` shortens it for the terminal
        assert stand_in.get_short_help_str(width) == command.get_short_help_str(width)


def test_the_root_help_is_the_same_before_and_after_the_commands_load() -> None:
    """Listed from the catalog or from the loaded commands, ``backout --help`` reads the
    same (a fresh group of the same commands, loaded at once, is the reference)."""
    eager = click.Group("backout", commands=[command for _, command in DEFINED.values()])
    for columns in ("60", "100"):
        listed = CliRunner().invoke(cli, ["--help"], env={"COLUMNS": columns})
        reference = CliRunner().invoke(eager, ["--help"], env={"COLUMNS": columns})
        assert listed.exit_code == reference.exit_code == 0
        commands = listed.output.split("Commands:")[1]
        assert commands == reference.output.split("Commands:")[1]
        assert {line.split()[0] for line in commands.splitlines() if line} == set(CATALOG)


def test_an_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["rollback"])
    assert result.exit_code == 2
    assert "No such command 'rollback'" in result.output
