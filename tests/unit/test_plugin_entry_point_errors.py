"""A broken plugin entry point is a clear error (which entry point, of which package, what
it should name, what to do), never a traceback: one that cannot be imported, and one that
names something other than a kind's class. It is an error when its kind is used or every
kind is listed; a plan that does not use it is not held up by it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from backout.errors import BackoutError
from backout.plugins import Registry

GROUP = "backout.test_broken_actions"
MODULE = "backout_test_broken_plugin"
SOURCE = """
from backout.actions import Action, Options, Outcome


class NoopAction(Action):
    kind = "noop"
    Options = Options

    def execute(self, options, ctx):
        return Outcome(True, "nothing")

    def describe(self, options):
        return "nothing"


class NeedsArguments(NoopAction):
    def __init__(self, url):
        self.url = url


class NoOptions:
    kind = "noop"
    Options = dict


class NoKind:
    Options = Options


class OtherKind(NoopAction):
    kind = "other"


def make_action():
    return NoopAction()


ANSWER = 42
"""
EXPECTED = "should name a class with `kind = 'noop'` and an `Options` pydantic model"


class Install(Protocol):
    def __call__(self, value: str, group: str = GROUP) -> Path: ...


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """Install the package ``broken-plugin`` (a .dist-info, as pip leaves it) whose entry
    point ``noop`` in ``group`` is ``value``; returns the folder to put on sys.path."""
    (tmp_path / f"{MODULE}.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))

    def install(value: str, group: str = GROUP) -> Path:
        info = tmp_path / "broken_plugin-0.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.3\n")
        (info / "entry_points.txt").write_text(f"[{group}]\nnoop = {value}\n")
        return tmp_path

    yield install
    sys.modules.pop(MODULE, None)


def load_error(install: Install, value: str) -> BackoutError:
    install(value)
    registry: Registry[Any] = Registry("action", group=GROUP)
    assert registry.names() == ["noop"]  # named without being imported
    with pytest.raises(BackoutError) as caught:
        registry.get("noop")
    with pytest.raises(BackoutError) as listed:
        list(registry)
    assert listed.value.message == caught.value.message
    return caught.value


def test_an_entry_point_whose_module_is_missing(install: Install) -> None:
    error = load_error(install, "backout_not_installed:NoopAction")
    assert error.message == (
        "the action plugin 'noop' (backout_not_installed:NoopAction, entry point of "
        "broken-plugin 0.3) cannot be loaded: ModuleNotFoundError: No module named "
        "'backout_not_installed'"
    )
    assert error.hint.startswith("fix or reinstall broken-plugin, or uninstall it; ")
    assert f"backout_not_installed:NoopAction {EXPECTED}" in error.hint


def test_an_entry_point_naming_a_missing_attribute(install: Install) -> None:
    error = load_error(install, f"{MODULE}:Nope")
    assert "cannot be loaded: AttributeError" in error.message
    assert "'noop'" in error.message
    assert "broken-plugin 0.3" in error.message


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("make_action", "it names a function"),
        ("ANSWER", "it names an int"),
        ("NeedsArguments", "NeedsArguments() failed: TypeError: "),
        ("NoOptions", "NoOptions.Options is not a pydantic model"),
        ("NoKind", "NoKind has no `kind`"),
        # the plan key is the entry point's name: another kind would be filed under a name
        # no plan uses
        ("OtherKind", "OtherKind has kind 'other', not 'noop'"),
    ],
)
def test_an_entry_point_naming_something_else(install: Install, target: str, problem: str) -> None:
    error = load_error(install, f"{MODULE}:{target}")
    assert error.message.startswith(
        f"the action plugin 'noop' ({MODULE}:{target}, entry point of broken-plugin 0.3) "
        f"is not a usable action class: {problem}"
    )
    assert EXPECTED in error.hint


def test_a_good_entry_point_still_loads(install: Install) -> None:
    install(f"{MODULE}:NoopAction")
    registry: Registry[Any] = Registry("action", group=GROUP)
    assert registry.names() == ["noop"]


def test_the_cli_says_so_and_exits_non_zero(install: Install, tmp_path: Path) -> None:
    folder = install("backout_not_installed:NoopAction", "backout.actions")
    plan = tmp_path / "plan.yaml"
    plan.write_text('plan: p\nsteps:\n  - name: a\n    run: ["true"]\n    timeout: 5s\n')
    env = {**os.environ, "PYTHONPATH": str(folder), "NO_COLOR": "1", "COLUMNS": "200"}

    def validate() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "backout", "validate", str(plan)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    # a plan that does not use the broken kind is not held up by it
    assert validate().returncode == 0
    plan.write_text("plan: p\nsteps:\n  - name: a\n    noop: {}\n    timeout: 5s\n")
    result = validate()
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.startswith(
        "error: the action plugin 'noop' (backout_not_installed:NoopAction, entry point of "
        "broken-plugin 0.3) cannot be loaded"
    )
    assert "hint: fix or reinstall broken-plugin, or uninstall it;" in result.stderr
