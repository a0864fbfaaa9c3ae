"""The docs stay honest: every example plan, and every plan shown in the docs, passes
``backout validate --strict`` (valid, and no lint warning either).

A plan shown in the docs is a fenced block opened by exactly ```` ```yaml ```` that has
the plan's top-level keys (``plan:`` and ``steps:`` at the start of a line, after any
comments); fragments, deliberately broken plans and plans that need an installed plugin
use other fences. The transcripts of the docs run in tests/docs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from backout.cli import cli

ROOT = Path(__file__).resolve().parents[2]
# backout-policy.yaml is a change policy, not a plan (tests/integration/test_gate.py loads
# it); drop this exclusion once `backout validate` recognises a policy file (issue 7)
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml") if p.name != "backout-policy.yaml")
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```$", re.DOTALL | re.MULTILINE)
PLAN_KEYS = {"plan", "steps"}


def doc_plans() -> list[tuple[str, str]]:
    """(FILE:LINE of the opening fence, plan text) for every plan block in the docs."""
    plans: list[tuple[str, str]] = []
    for doc in DOCS:
        if not doc.exists():
            continue
        text = doc.read_text(encoding="utf-8")
        for match in YAML_BLOCK.finditer(text):
            if PLAN_KEYS.issubset(re.findall(r"^(\w+):", match.group(1), re.MULTILINE)):
                line = text.count("\n", 0, match.start()) + 1
                plans.append((f"{doc.name}:{line}", match.group(1)))
    return plans


DOC_PLANS = doc_plans()
WRAPPER = "plan: fragment\nsteps:\n  - {name: back out, run: [./bin/undo], timeout: 5s}\n"


def doc_fragments() -> list[tuple[str, str]]:
    """(FILE:LINE, text) of the ```yaml blocks that are a plan's `telemetry:` and
    `triggers:` sections without the rest: valid once put in a plan."""
    found: list[tuple[str, str]] = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in YAML_BLOCK.finditer(text):
            keys = set(re.findall(r"^(\w+):", match.group(1), re.MULTILINE))
            if keys and keys <= {"telemetry", "triggers"} and "triggers" in keys:
                line = text.count("\n", 0, match.start()) + 1
                found.append((f"{doc.name}:{line}", match.group(1)))
    return found


DOC_FRAGMENTS = doc_fragments()


@pytest.mark.parametrize(
    "text", [text for _, text in DOC_FRAGMENTS], ids=[where for where, _ in DOC_FRAGMENTS]
)
def test_triggers_shown_in_the_docs_validate_in_a_plan(text: str, tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(WRAPPER + text, encoding="utf-8")
    code, output = validate_strict(path)
    assert code == 0, f"{output}\n--- plan ---\n{WRAPPER + text}"


def validate_strict(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["validate", "--strict", str(path)], obj={})
    return result.exit_code, result.output


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_validates_strictly(path: Path) -> None:
    code, output = validate_strict(path)
    assert code == 0, output
    assert "warning" not in output, output


@pytest.mark.parametrize(
    "text", [text for _, text in DOC_PLANS], ids=[where for where, _ in DOC_PLANS]
)
def test_plan_in_docs_validates_strictly(text: str, tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    code, output = validate_strict(path)
    assert code == 0, f"{output}\n--- plan ---\n{text}"
    assert "warning" not in output, output


def test_the_examples_and_docs_are_found() -> None:
    # a moved folder or a changed fence style must not turn the tests above into no-ops
    names = {path.name for path in EXAMPLES}
    assert {
        "symlink-release.yaml",
        "systemd-service.yaml",
        "feature-flag-http.yaml",
        "database-migration.yaml",
    } <= names
    found = {where.split(":")[0] for where, _ in DOC_PLANS}
    assert {"README.md", "plan-reference.md", "actions.md"} <= found
    assert any(where.startswith("triggers.md:") for where, _ in DOC_FRAGMENTS)
