"""Registries: a name means one thing; plugins come from real entry points."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from backout.actions import ACTIONS
from backout.actions.run import RunAction
from backout.actions.shell import ShellAction
from backout.errors import BackoutError
from backout.plugins import Registry

GROUP = "backout.test_actions"
MODULE = "backout_test_plugin"
PLUGIN_SOURCE = """
from backout.actions import Action, Options, Outcome


class NoopOptions(Options):
    note: str = ""


class NoopAction(Action):
    kind = "noop"
    Options = NoopOptions

    def execute(self, options, ctx):
        return Outcome(True, "did nothing: " + options.note)

    def describe(self, options):
        return "do nothing"


class OtherRun(NoopAction):
    kind = "run"
"""


def test_two_objects_with_one_name_is_an_error() -> None:
    registry: Registry[Any] = Registry("action")
    registry.register(RunAction())
    with pytest.raises(BackoutError, match="two actions are named 'run'") as caught:
        registry.register(RunAction())
    assert "names must be unique" in caught.value.hint
    assert isinstance(registry.get("run"), RunAction)


def test_registering_the_same_object_twice_is_harmless() -> None:
    registry: Registry[Any] = Registry("check")
    action = ShellAction()
    assert registry.register(action) is action
    assert registry.register(action) is action
    assert registry.names() == ["shell"]


def test_lookup_iteration_and_membership() -> None:
    registry: Registry[Any] = Registry("action")
    shell, run = registry.register(ShellAction()), registry.register(RunAction())
    assert registry.names() == ["run", "shell"]
    assert list(registry) == [run, shell]
    assert "run" in registry
    assert "nope" not in registry
    with pytest.raises(KeyError):
        registry.get("nope")


def test_the_installed_entry_points_are_the_built_ins() -> None:
    # backout's own pyproject declares the built-ins as entry points: no duplicate error
    assert {"http", "run", "shell", "symlink", "wait"} <= set(ACTIONS.names())
    assert type(ACTIONS.get("run")) is RunAction
    assert type(ACTIONS.get("shell")) is ShellAction


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Install a distribution with entry points, the way pip leaves it: a .dist-info folder."""
    (tmp_path / f"{MODULE}.py").write_text(PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))

    def install(dist: str, entry_points: dict[str, str]) -> None:
        info = tmp_path / f"{dist}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        lines = "\n".join(f"{name} = {value}" for name, value in entry_points.items())
        (info / "entry_points.txt").write_text(f"[{GROUP}]\n{lines}\n")

    yield install
    sys.modules.pop(MODULE, None)


def test_plugin_from_an_entry_point_is_loaded_on_first_use(install: Callable[..., None]) -> None:
    install("noop-plugin", {"noop": f"{MODULE}:NoopAction"})
    registry: Registry[Any] = Registry("action", group=GROUP)
    registry.register(RunAction())
    assert registry.names() == ["noop", "run"]
    noop = registry.get("noop")
    outcome = noop.execute(noop.Options.model_validate({"note": "hi"}), None)
    assert outcome.summary == "did nothing: hi"


def test_plugin_reusing_a_built_in_name_is_an_error(install: Callable[..., None]) -> None:
    install("evil-plugin", {"run": f"{MODULE}:OtherRun"})
    registry: Registry[Any] = Registry("action", group=GROUP)
    registry.register(RunAction())
    with pytest.raises(BackoutError, match="reuses the built-in name 'run'") as caught:
        registry.names()
    assert f"{MODULE}:OtherRun" in caught.value.message


def test_two_plugins_with_one_name_is_an_error(install: Callable[..., None]) -> None:
    install("first-plugin", {"noop": f"{MODULE}:NoopAction"})
    install("second-plugin", {"noop": f"{MODULE}:OtherRun"})
    registry: Registry[Any] = Registry("action", group=GROUP)
    with pytest.raises(BackoutError, match="two action plugins are named 'noop'") as caught:
        registry.get("noop")
    assert caught.value.hint == "uninstall one of the packages or rename its entry point"


def test_a_built_in_is_imported_when_first_used(install: Callable[..., None]) -> None:
    install("noop-plugin", {"noop": f"{MODULE}:NoopAction"})
    registry: Registry[Any] = Registry(
        "action", group=GROUP, builtins={"run": "backout.actions.run:RunAction"}
    )
    sys.modules.pop(MODULE, None)
    assert registry.names() == ["noop", "run"]
    assert "run" in registry
    assert MODULE not in sys.modules  # named, not imported
    assert type(registry.get("run")) is RunAction
    assert registry.get("noop").kind == "noop"
    assert MODULE in sys.modules


def test_plugin_reusing_a_lazy_built_in_name_is_an_error(install: Callable[..., None]) -> None:
    install("evil-plugin", {"run": f"{MODULE}:OtherRun"})
    registry: Registry[Any] = Registry(
        "action", group=GROUP, builtins={"run": "backout.actions.run:RunAction"}
    )
    with pytest.raises(BackoutError, match="reuses the built-in name 'run'"):
        _ = "wait" in registry
