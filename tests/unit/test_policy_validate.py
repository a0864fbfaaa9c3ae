"""Policy files are validated like plans: `backout validate` recognises one among plans, and
`backout policy validate` checks one with the loader the gate uses (FILE:LINE:COL errors)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from backout import commands
from backout.changes.policy import load_policy, looks_like_policy
from backout.cli import cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

BAD = """\
low:
  aprovals: 1
high:
  approvals: many
  rehearsal: {max_age: 3 days}
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BACKOUT_POLICY", raising=False)
    return tmp_path


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env=env).invoke(cli, list(args), obj={})


def test_validate_strict_passes_every_example_with_the_policy_among_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """README: `backout validate --strict examples/*.yaml` exits 0."""
    files = sorted(str(p.relative_to(ROOT)) for p in EXAMPLES.glob("*.yaml"))
    assert "examples/backout-policy.yaml" in files
    monkeypatch.chdir(ROOT)
    result = invoke("validate", "--strict", *files)
    assert result.exit_code == 0, result.output
    assert "examples/backout-policy.yaml: valid policy\n" in result.stdout
    assert "examples/symlink-release.yaml: valid\n" in result.stdout
    assert result.stderr == ""


def test_validate_reports_a_bad_policy_as_a_policy(in_tmp: Path) -> None:
    (in_tmp / "backout-policy.yaml").write_text(BAD)
    result = invoke("validate", "backout-policy.yaml")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: backout-policy.yaml:2:3: low.aprovals: unknown key 'aprovals' "
        "(did you mean 'approvals'?)",
        "error: backout-policy.yaml:4:3: high.approvals: Input should be a valid integer, "
        "unable to parse string as an integer",
        "error: backout-policy.yaml:5:15: high.rehearsal.max_age: '3 days' is not a duration; "
        "expected a number with ms, s, m or h",
    ]
    assert "plan" not in result.stderr  # not read as a plan missing its `plan:` key


def test_policy_validate_a_good_and_a_bad_file(in_tmp: Path) -> None:
    (in_tmp / "strict.yaml").write_text("critical:\n  approvals: 3\n")
    (in_tmp / "bad.yaml").write_text(BAD)
    good = invoke("policy", "validate", "strict.yaml")
    assert (good.exit_code, good.stdout, good.stderr) == (0, "strict.yaml: valid policy\n", "")
    both = invoke("policy", "validate", "strict.yaml", "./bad.yaml")
    assert both.exit_code == 2
    assert "strict.yaml: valid policy" in both.stdout
    assert both.stderr.startswith("error: ./bad.yaml:2:3: low.aprovals: unknown key")


def test_policy_validate_json(in_tmp: Path) -> None:
    (in_tmp / "bad.yaml").write_text(BAD)
    result = invoke("policy", "validate", "--json", "bad.yaml")
    assert result.exit_code == 2
    found = json.loads(result.stdout)["bad.yaml"]
    assert [(i["line"], i["col"], i["field"]) for i in found] == [
        (2, 3, "low.aprovals"),
        (4, 3, "high.approvals"),
        (5, 15, "high.rehearsal.max_age"),
    ]


def test_policy_validate_reads_the_policy_the_gate_reads(in_tmp: Path) -> None:
    none = invoke("policy", "validate")
    assert none.exit_code == 2
    assert none.stderr.splitlines() == [
        "error: no policy file to validate: there is no ./backout-policy.yaml and "
        "BACKOUT_POLICY is not set (the built-in default applies)",
        "hint: name the file: `backout policy validate FILE`",
    ]
    (in_tmp / "backout-policy.yaml").write_text("low: {verify: true}\n")
    found = invoke("policy", "validate")
    assert (found.exit_code, found.stdout) == (0, "backout-policy.yaml: valid policy\n")
    (in_tmp / "ours.yaml").write_text(BAD)
    named = invoke("policy", "validate", env={"BACKOUT_POLICY": "ours.yaml"})
    assert named.exit_code == 2
    assert named.stderr.startswith("error: ours.yaml:2:3: low.aprovals")


def test_a_missing_policy_file(in_tmp: Path) -> None:
    result = invoke("policy", "validate", "gone-policy.yaml")
    assert (result.exit_code, result.stderr) == (2, "error: gone-policy.yaml: no such file\n")


def test_what_counts_as_a_policy_file(in_tmp: Path) -> None:
    plan = "plan: shop\nsteps:\n  - name: n\n    run: ['true']\n"
    (in_tmp / "rollout-policy.yaml").write_text(plan)  # named like one, but a plan
    (in_tmp / "levels.yaml").write_text("medium: {approvals: 2}\n")
    (in_tmp / "team-policy.yml").write_text("hgih: {approvals: 2}\n")  # a typo: still a policy
    (in_tmp / "notes.yaml").write_text("owner: ann\n")
    assert not looks_like_policy("rollout-policy.yaml")
    assert looks_like_policy("levels.yaml")
    assert looks_like_policy("team-policy.yml")
    assert not looks_like_policy("notes.yaml")
    assert not looks_like_policy("missing.yaml")
    results = commands.validate(["rollout-policy.yaml", "levels.yaml", "team-policy.yml"])
    assert results["rollout-policy.yaml"] == []
    assert results["levels.yaml"] == []
    assert [str(i) for i in results["team-policy.yml"]] == [
        "team-policy.yml:1:1: hgih: unknown key 'hgih' (did you mean 'high'?)"
    ]


def test_the_example_policy_is_the_built_in_default() -> None:
    """The file documents the default; validating it uses the gate's own loader."""
    policy, source = load_policy(EXAMPLES / "backout-policy.yaml")
    assert source.endswith("backout-policy.yaml")
    assert commands.validate_policy([EXAMPLES / "backout-policy.yaml"]) == {
        str(EXAMPLES / "backout-policy.yaml"): []
    }
    assert policy.model_dump() == type(policy)().model_dump()
