"""Helpers shared by the change, gate, audit and outbox tests: the CLI through click's runner,
a small plan, and the store read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from backout.cli import cli

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# risk: low in the file, so the linter's high-risk rules stay quiet whatever risk a test
# gives the change; verify, rto and approvers are there, so a policy can ask for them.
PLAN = f"""plan: web
service: web
risk: low
rto: 1m
roles:
  lead: lead@example.com
  approvers: [bob, carol]
steps:
  - name: write marker
    run: [touch, marker.txt]
    timeout: 5s
    idempotent: true
verify:
  - name: marker exists
    file_hash: {{path: marker.txt, equals: {EMPTY_SHA256}}}
"""
FAILING_PLAN = """plan: web
service: web
risk: low
roles:
  approvers: [bob, carol]
steps:
  - name: breaks
    run: ['false']
    timeout: 5s
    idempotent: true
"""
# asks for nothing: lifecycle tests exercise the rules, not the policy
OPEN_POLICY = """low: {}
medium: {}
high: {}
critical: {}
"""


def invoke(url: str, *args: str, actor: str = "alice") -> Result:
    return CliRunner().invoke(cli, ["--db", url, "--actor", actor, *args], obj={})


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


def create_change(url: str, plan: str, *extra: str, actor: str = "alice") -> int:
    result = invoke(
        url,
        "change",
        "create",
        "--plan",
        plan,
        "--title",
        "Deploy web",
        *extra,
        "--json",
        actor=actor,
    )
    assert result.exit_code == 0, result.output
    return int(json.loads(result.stdout)["id"])


def show(url: str, change_id: int) -> dict[str, Any]:
    result = invoke(url, "change", "show", str(change_id), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def audit_records(url: str, *filters: str) -> list[dict[str, Any]]:
    result = invoke(url, "audit", "log", "--limit", "10000", "--json", *filters)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def outbox_rows(url: str) -> list[dict[str, Any]]:
    result = invoke(url, "outbox", "list", "--json")
    assert result.exit_code == 0, result.output
    return sorted(json.loads(result.stdout), key=lambda row: row["id"])
