"""A gate check's result, and the JUnit XML of a gate's checks: light (no store, no plan),
so the typed results of the CLI can name them without loading the gate itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any
from xml.etree import ElementTree as ET


@dataclass(frozen=True)
class GateCheck:
    name: str
    required: bool
    passed: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def junit_xml(change_id: int, checks: Sequence[GateCheck]) -> str:
    """JUnit XML that Jenkins, GitLab, GitHub Actions and Azure DevOps all read."""
    failures = sum(1 for c in checks if not c.passed)
    skipped = sum(1 for c in checks if not c.required and c.passed)
    suite = ET.Element(
        "testsuite",
        name=f"backout gate change {change_id}",
        tests=str(len(checks)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
    )
    for check in checks:
        case = ET.SubElement(suite, "testcase", classname="backout.gate", name=check.name)
        if not check.passed:
            ET.SubElement(case, "failure", message=check.reason, type="policy").text = check.reason
        elif not check.required:
            ET.SubElement(case, "skipped", message=check.reason)
        ET.SubElement(case, "system-out").text = check.reason
    root = ET.Element("testsuites")
    root.append(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


__all__ = ["GateCheck", "junit_xml"]
