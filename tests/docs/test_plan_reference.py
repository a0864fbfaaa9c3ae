"""docs/plan-reference.md against the plan's JSON Schema (``backout schema``): every key
the schema accepts is in the reference, and every key the reference lists is accepted.

A key added to a plan model without a row in its table (or a mention in its section)
fails here, naming the section to document it in."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from backout.plans import plan_schema

DOCS = Path(__file__).resolve().parents[2] / "docs"
CODE = re.compile(r"`([A-Za-z_][\w-]*)`")


def section(doc: str, heading: str) -> str:
    """The text under a heading (any level) up to the next heading of its level or above."""
    lines = (DOCS / doc).read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^(#+) (.*)$", line)
        if match and match.group(2).strip() == heading:
            level = len(match.group(1))
            end = next(
                (
                    j
                    for j in range(i + 1, len(lines))
                    if (m := re.match(r"^(#+) ", lines[j])) and len(m.group(1)) <= level
                ),
                len(lines),
            )
            return "\n".join(lines[i + 1 : end])
    raise AssertionError(f"{doc}: no heading {heading!r}")


def table_column(text: str, column: int = 0) -> set[str]:
    """The names in backticks in one column of every table of the text (not the header)."""
    names: set[str] = set()
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > column:
            names |= set(CODE.findall(cells[column]))
    return names


def mentioned(text: str) -> set[str]:
    """Every key written in code in the text: `strategy`, `env:`, `roles: {lead: …}`."""
    return {
        word
        for span in re.findall(r"`([^`\n]+)`", text)
        for word in re.findall(r"[A-Za-z_][\w-]*(?=\s*:|$|\s*[,}\]])", span)
    }


@cache
def schema() -> dict[str, Any]:
    return plan_schema()


def defs(name: str) -> set[str]:
    return set(schema()["$defs"][name]["properties"])


def kinded(section_name: str) -> tuple[set[str], set[str]]:
    """(common fields, kinds) of a kinded list or mapping: ``steps``, ``verify`` …"""
    node = schema()["properties"][section_name]
    variants = (node.get("items") or node["additionalProperties"])["oneOf"]
    keys = [set(v["properties"]) for v in variants]
    common = set.intersection(*keys)
    return common, set().union(*keys) - common


def test_top_level_keys() -> None:
    documented = table_column(section("plan-reference.md", "Top-level keys"))
    assert documented == set(schema()["properties"]), "see the top-level keys table"


@pytest.mark.parametrize(("key", "heading"), [("steps", "Steps"), ("verify", "Verify")])
def test_common_fields_and_kinds(key: str, heading: str) -> None:
    text = section("plan-reference.md", heading)
    common, kinds = kinded(key)
    assert table_column(text) == common, f"the fields table of `{heading}`"
    assert kinds <= mentioned(text.split("|", 1)[0]), f"the kinds listed above `{heading}`'s table"


def test_baseline_sources_and_their_options() -> None:
    text = section("plan-reference.md", "Baseline")
    _, kinds = kinded("baseline")
    assert table_column(text) == kinds
    variants = schema()["properties"]["baseline"]["additionalProperties"]["oneOf"]
    for variant in variants:
        (kind,) = set(variant["properties"])
        options = variant["properties"][kind]
        options = options.get("anyOf", [options])[0]  # the full form, not the shorthand
        row = next(line for line in text.splitlines() if line.startswith(f"| `{kind}` |"))
        assert set(CODE.findall(row.split("|")[2])) == set(options["properties"]), row


@pytest.mark.parametrize(
    ("heading", "models"),
    [
        ("Rehearsal", ["Rehearsal"]),
        ("Notify", ["Notify", "NotifyRoute"]),
        ("Disaster recovery", ["DisasterRecovery"]),
        ("Status page", ["StatusPage"]),
    ],
)
def test_section_tables(heading: str, models: list[str]) -> None:
    documented = table_column(section("plan-reference.md", heading))
    assert documented == set().union(*(defs(m) for m in models)), f"the tables of `{heading}`"


@pytest.mark.parametrize(
    ("doc", "heading", "model"),
    [
        ("plan-reference.md", "`owner`, `roles`", "Roles"),
        ("plan-reference.md", "Secrets", "Secret"),
        ("plan-reference.md", "Notify", "EscalationLevel"),
        ("plan-reference.md", "Notify", "UpdateCadence"),
        ("deploy.md", "The `deploy:` block", "Deploy"),
        ("deploy.md", "The `deploy:` block", "Stage"),
    ],
)
def test_keys_without_a_table_are_named_in_their_section(
    doc: str, heading: str, model: str
) -> None:
    missing = defs(model) - mentioned(section(doc, heading))
    assert not missing, f"{doc} § {heading} does not name {sorted(missing)} of {model}"


def test_the_check_sees_a_missing_row() -> None:
    # the tables are really read: dropping a row is noticed
    text = section("plan-reference.md", "Status page")
    without = "\n".join(line for line in text.splitlines() if "| `quiet` |" not in line)
    assert table_column(text) - table_column(without) == {"quiet"}
