"""The layering is enforced, not only drawn: `lint-imports` (run by `make test`) passes on
the code, and fails on a copy of it given one deliberate upward import or cycle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"  # the contracts live in [tool.importlinter]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """A copy of the package, found before the installed one (PYTHONPATH comes first)."""
    copy = tmp_path / "src"
    shutil.copytree(
        ROOT / "src" / "backout", copy / "backout", ignore=shutil.ignore_patterns("__pycache__")
    )
    return copy


def lint_imports(src: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(PYPROJECT)],
        cwd=src.parent,
        env={**os.environ, "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def add_import(src: Path, module: str, statement: str) -> None:
    path = src / "backout" / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{statement}  # noqa\n")


def test_the_code_keeps_every_contract(src: Path) -> None:
    result = lint_imports(src)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "statement", "reported"),
    [
        # the store reaching up to the engine (the cycle the kernel broke)
        ("store/repo.py", "import backout.engine.view", "backout.store.repo -> backout.engine"),
        # the spec layer naming the actions again instead of taking the kinds it is given
        ("spec/loader.py", "import backout.actions", "backout.spec.loader -> backout.actions"),
        # a probe borrowing from the actions (the other cycle the kernel broke)
        ("probes/command.py", "import backout.actions.run", "backout.probes.command"),
    ],
)
def test_an_upward_import_breaks_the_layers(
    src: Path, module: str, statement: str, reported: str
) -> None:
    add_import(src, module, statement)
    result = lint_imports(src)
    assert result.returncode == 1, result.stdout
    assert "one-way layers: each layer imports only the layers below it BROKEN" in result.stdout
    assert reported in result.stdout


def test_a_cycle_inside_a_package_is_refused(src: Path) -> None:
    add_import(src, "engine/view.py", "import backout.engine.journal")  # journal imports view
    result = lint_imports(src)
    assert result.returncode == 1, result.stdout
    assert "no cycles between the modules of any package BROKEN" in result.stdout
