"""What ``--json`` prints validates against its published schema
(``backout.reports.schemas``, documented in docs/json-output.md), for real output of
each command on a real run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from backout.reports.schemas import OUTPUTS, output_schema
from tests.docs.setups import SHOP
from tests.docs.transcripts import Session

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PLAN = re.search(r"```yaml\n(plan: shop\n.*?)```", README, re.DOTALL)

# the output name, and the commands (after `backout`) that print it; RUN is the run's id
COMMANDS: list[tuple[str, str]] = [
    ("snapshot", "snapshot --json backout.yaml"),
    ("dry-run", "run --dry-run --json backout.yaml"),
    ("run", "run --json backout.yaml"),
    ("run", "status --json RUN"),
    ("runs", "runs --json"),
    ("journal", "journal --json RUN"),
    ("explain", "explain --json RUN"),
    ("audit-log", "audit log --json"),
    ("audit-checkpoint", "audit checkpoint --json"),
    ("change", "change create --json --plan backout.yaml --title 'Deploy shop 2.4' --risk low"),
    ("change", "change show --json 1"),
    ("gate", "gate --json 1"),
    ("rehearse", "rehearse --json --trigger manual backout.yaml"),
    ("rehearsals", "rehearsals --json"),
    ("token-created", "token create --json --role operator --actor ci-deploy --expires 30d"),
    ("tokens", "token list --json"),
    ("token", "token revoke --json 1 --reason rotated"),
]


def json_of(session: Session, command: str) -> Any:
    result = session.script(f"backout {command} 2>/dev/null")
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"`backout {command}` printed no JSON:\n{result.stdout}") from None


@pytest.fixture
def outputs(session: Session) -> dict[str, list[Any]]:
    """Every command's JSON on the README's shop: snapshot, v2 live, a backout, …"""
    assert PLAN, "README.md's plan moved"
    session.script(SHOP)
    (session.cwd / "backout.yaml").write_text(PLAN.group(1), encoding="utf-8")
    found: dict[str, list[Any]] = {}
    run_id = ""
    for name, command in COMMANDS:
        if name == "run" and not run_id:
            session.script("ln -sfn v2 releases/current")
        data = json_of(session, command.replace("RUN", run_id))
        if name == "run" and not run_id:
            run_id = data["run_id"]
        found.setdefault(name, []).append(data)
    return found


def test_every_json_output_validates_against_its_schema(outputs: dict[str, list[Any]]) -> None:
    # a fleet's watch needs telemetry targets: tests/integration/test_watch_fleet.py checks it
    assert set(outputs) | {"fleet"} == set(OUTPUTS)
    for name, datas in outputs.items():
        schema = output_schema(name)
        jsonschema.Draft202012Validator.check_schema(schema)
        validator = jsonschema.Draft202012Validator(schema)
        for data in datas:
            errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
            assert not errors, f"{name}: {errors}"
    # what the docs promise of the shapes, beyond their types
    (run,) = outputs["run"][:1]
    assert [s["number"] for s in run["steps"]] == [1, 2]
    journal = outputs["journal"][0]
    started = [e for e in journal if e["kind"] == "step_started"]
    assert [(e["step"], e["step_index"]) for e in started] == [(1, 0), (2, 1)]
    assert [e["seq"] for e in journal] == list(range(1, len(journal) + 1))
    assert outputs["explain"][0]["run"]["run_id"] == run["run_id"]
    assert outputs["runs"][0][0]["run_id"] == run["run_id"]
    created, (listed,) = outputs["token-created"][0], outputs["tokens"][0]
    assert created["secret"].startswith(created["prefix"])
    assert len(created["secret"]) == 43  # bo_ and 40 characters
    assert (listed["id"], listed["status"]) == (created["id"], "active")
    assert "secret" not in listed
    assert outputs["token"][0]["status"] == "revoked"


def test_a_schema_refuses_a_changed_shape() -> None:
    # the schemas are not vacuous: a renamed field or a wrong type fails
    validator = jsonschema.Draft202012Validator(output_schema("journal"))
    good = {
        "seq": 1,
        "at": 1.5,
        "kind": "run_created",
        "step": None,
        "step_index": None,
        "attempt": None,
        "data": {},
    }
    assert validator.is_valid([good])
    renamed = {**{k: v for k, v in good.items() if k != "seq"}, "sequence": 1}
    assert not validator.is_valid([renamed])
    assert not validator.is_valid([{**good, "step": "1"}])
    with pytest.raises(KeyError, match="known: run, runs"):
        output_schema("nope")
