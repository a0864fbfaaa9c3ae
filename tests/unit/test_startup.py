"""Start-up stays light: ``backout --version``, ``--help`` and ``validate`` load no store,
engine, HTTP client or numeric library, because the root group imports a command's module
only when that command is used and the plan loader's kinds import their heavy libraries
where they run. Each command runs in a fresh interpreter, which reports the modules it
loaded (timings are for bench/startup.py, never asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from backout import commands
from backout.cli.catalog import CATALOG

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo.yaml"

# what `backout --version` and `backout --help` must not load
NOT_FOR_VERSION = (
    "sqlalchemy",
    "httpx",
    "jinja2",
    "scipy",
    "numpy",
    "backout.store.models",
    "backout.engine",
    "backout.commands.caller",
    "fastapi",
    "uvicorn",
    "alembic",
)
# what `backout validate PLAN` must not load: it reads YAML, builds the plan's models and
# lints them (Jinja2 parses the templates); the store, the engine and the senders wait
NOT_FOR_VALIDATE = (
    "sqlalchemy",
    "httpx",
    "scipy",
    "numpy",
    "backout.store.models",
    "backout.engine",
    "fastapi",
    "uvicorn",
    "alembic",
    "rich.table",  # the run report's table: loaded when a report is printed
)

PROGRAM = """
import json, sys
from backout.cli import cli
try:
    cli.main(sys.argv[2:], prog_name="backout", obj={})
    code = 0
except SystemExit as exit:
    code = exit.code
with open(sys.argv[1], "w") as report:
    json.dump({"code": code, "modules": sorted(sys.modules)}, report)
"""


# `backout COMMAND --help`, then (for a group) `backout COMMAND SUB --help` for each of its
# commands in turn: what each printed and the modules loaded by then
HELPS = """
import contextlib, io, json, sys
import click
from backout.cli import cli
steps = []
def show(args):
    shown = io.StringIO()
    try:
        with contextlib.redirect_stdout(shown):
            cli.main([*args, "--help"], prog_name="backout", obj={})
        code = 0
    except SystemExit as exit:
        code = exit.code
    steps.append({"args": args, "code": code, "output": shown.getvalue(),
                  "modules": sorted(sys.modules)})
name = sys.argv[2]
show([name])
context = click.Context(cli)
group = cli.get_command(context, name)
if isinstance(group, click.Group):
    for sub in group.list_commands(context):
        show([name, sub])
with open(sys.argv[1], "w") as report:
    json.dump(steps, report)
"""


def start(tmp_path: Path, *args: str, program: str = PROGRAM) -> tuple[int, str, Any]:
    """Run ``program`` (default: ``backout ARGS``) in a new interpreter: (exit code,
    output, what it reported: for ``backout ARGS`` the set of modules loaded)."""
    report = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", program, str(report), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert report.exists(), done.stderr
    result = json.loads(report.read_text())
    if program != PROGRAM:
        return done.returncode, done.stdout + done.stderr, result
    return result["code"], done.stdout + done.stderr, set(result["modules"])


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` (a package counts with its submodules) are among ``modules``."""
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in modules))


def test_version_loads_no_command(tmp_path: Path) -> None:
    code, output, modules = start(tmp_path, "--version")
    assert code == 0
    assert "backout, version" in output
    assert loaded(modules, NOT_FOR_VERSION) == []
    assert not any(m.startswith("backout.commands") for m in modules)
    assert {m for m in modules if m.startswith("backout.cli.")} == {
        "backout.cli.base",
        "backout.cli.catalog",
        "backout.cli.conventions",
    }


def test_help_lists_every_command_without_loading_them(tmp_path: Path) -> None:
    code, output, modules = start(tmp_path, "--help")
    assert code == 0
    listed = output.split("Commands:")[1].split()
    assert set(CATALOG) <= set(listed)
    assert loaded(modules, NOT_FOR_VERSION) == []
    assert not any(m in modules for m in {entry.module for entry in CATALOG.values()})


def test_validate_loads_no_store_engine_or_http_client(tmp_path: Path) -> None:
    code, output, modules = start(tmp_path, "validate", str(DEMO))
    assert code == 0, output
    assert "valid" in output
    assert "backout.spec.models" in modules  # it did load and check the plan
    assert loaded(modules, NOT_FOR_VALIDATE) == []
    # the kinds the plan uses are loaded, and no other kind's module
    assert {"backout.actions.symlink", "backout.actions.run", "backout.probes.http"} <= modules
    unused = (
        "backout.actions.http",
        "backout.actions.alembic",
        "backout.actions.nginx",
        "backout.actions.sql_migration",
        "backout.probes.sql",
        "backout.probes.kube",
        "backout.telemetry.prometheus",
        "backout.channels.servicenow",
        "backout.channels.pagerduty",
    )
    assert loaded(modules, unused) == []


def test_a_command_s_help_loads_its_own_module_only(tmp_path: Path) -> None:
    code, output, modules = start(tmp_path, "validate", "--help")
    assert code == 0
    assert "Exit codes:" in output  # the lazily loaded command is documented too
    assert "backout.cli.plans" in modules
    others = {entry.module for entry in CATALOG.values()} - {"backout.cli.plans"}
    assert sorted(others & modules) == []


def test_the_run_commands_help_loads_no_store_or_engine(tmp_path: Path) -> None:
    """`backout status --help` (its module holds run, status, resume …): the help is
    drawn without the engine, the store's models or the drills' reports."""
    code, output, modules = start(tmp_path, "status", "--help")
    assert code == 0
    assert "Exit codes:" in output
    assert "backout.cli.runs" in modules
    assert loaded(modules, NOT_FOR_VERSION) == []
    assert "backout.cli.rehearsals" not in modules


def test_every_verb_is_exported() -> None:
    """``backout.commands`` exports its verbs lazily: asking for one loads its module."""
    assert set(commands.__all__) == set(commands._LAZY)
    for name in commands.__all__:
        assert getattr(commands, name) is not None


@pytest.mark.parametrize("verb", ["report", "runs", "metrics", "preflight", "snapshots"])
def test_a_verb_keeps_its_name_when_its_module_is_imported(verb: str) -> None:
    """``commands.report`` is the verb, even after ``backout.commands.report`` (its
    module, of the same name) is imported, as when the package imported them all."""
    __import__(f"backout.commands.{verb}")
    value = getattr(commands, verb)
    assert callable(value)
    assert not isinstance(value, ModuleType)


@pytest.mark.parametrize("command", sorted(CATALOG))
def test_every_command_s_help_loads_no_store_engine_or_web_library(
    tmp_path: Path, command: str
) -> None:
    """`backout COMMAND --help`, and for a group each `backout COMMAND SUB --help`, load
    what `backout --help` does not (the command's module) and nothing heavy: a command
    imports the store, the engine, the templates and the web and numeric libraries where it
    runs. One new interpreter per command, so that no other command's imports hide its
    own; a group's helps run in turn in it (each one's modules are checked, and nothing
    is loaded twice, so the union is what each loads)."""
    code, output, steps = start(tmp_path, command, program=HELPS)
    assert code == 0, output
    assert steps, output
    for step in steps:
        shown = " ".join(step["args"])
        assert step["code"] == 0, f"backout {shown} --help: {step['output']}{output}"
        assert "Usage: backout " + shown in step["output"]
        modules = set(step["modules"])
        assert CATALOG[command].module in modules
        assert loaded(modules, NOT_FOR_VERSION) == [], f"backout {shown} --help"


def test_the_values_the_helps_spell_out_are_the_libraries_own() -> None:
    """Where a help shows a value that lives beside the store or the templates (a default,
    a choice), the command's module spells it out; here it is checked against the real one."""
    from backout import postmortem, statuspage
    from backout.cli import audit, incidents, report
    from backout.store import outbox

    assert audit.ITSM_ROUTE == outbox.ITSM_ROUTE
    assert report.FORMATS == postmortem.FORMATS
    assert incidents.INCIDENT_STATUSES == statuspage.INCIDENT_STATUSES
    assert incidents.COMPONENT_STATUSES == statuspage.COMPONENT_STATUSES
