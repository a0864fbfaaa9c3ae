"""Environments in the plan: names and keys checked when the plan loads, templates that
read a key not every environment defines are errors at their line, and `--env` is
required exactly when the plan declares environments."""

from __future__ import annotations

from pathlib import Path

import pytest

from backout.errors import PlanError, UsageError
from backout.plans import load_plan
from backout.spec.environments import environment_values, select_environment
from backout.spec.lint import lint

PLAN = """plan: shop
environments:
  staging: {url: "http://staging:8080", host: s1}
  production: {url: "https://shop.example.com"}
steps:
  - name: drain
    run: [./bin/drain, "{{ environment.url }}", "{{ environment.name }}"]
    timeout: 5s
  - name: tell
    run: [./bin/tell, "{{ environment.host }}"]
    timeout: 5s
"""


def test_a_key_only_some_environments_define_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN)
    issues = [i for i in lint(load_plan(path)) if "environment." in i.message]
    assert [(i.line, i.severity) for i in issues] == [(10, "error")]
    assert "environment.host, which not every one of `environments:` defines" in issues[0].message


def test_a_plan_without_environments_cannot_read_one(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text("plan: shop\nsteps:\n  - name: x\n    run: [echo, '{{ environment.url }}']\n")
    issues = [i for i in lint(load_plan(path)) if "environment." in i.message]
    assert len(issues) == 1
    assert "declare `environments:`" in issues[0].hint


def test_environment_names_and_keys_are_checked(tmp_path: Path) -> None:
    steps = "steps:\n  - name: x\n    run: ['true']\n"
    for environments, expected in (
        ("  'bad name': {x: '1'}\n", "environment 'bad name': use letters"),
        ("  ok: {name: x}\n", "`name` is the environment's own name"),
    ):
        path = tmp_path / "plan.yaml"
        path.write_text(f"plan: shop\nenvironments:\n{environments}{steps}")
        with pytest.raises(PlanError) as refused:
            load_plan(path)
        assert expected in str(refused.value)
        assert refused.value.issues[0].line == 2


def test_env_is_required_exactly_when_environments_are_declared(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN)
    plan = load_plan(path).plan
    assert select_environment(plan, "staging") == "staging"
    assert environment_values(plan, "staging") == {
        "url": "http://staging:8080",
        "host": "s1",
        "name": "staging",
    }
    assert plan.service_key("staging") == "shop@staging"
    with pytest.raises(UsageError, match="say which with --env"):
        select_environment(plan, None)
    with pytest.raises(UsageError, match="has no environment 'qa'"):
        select_environment(plan, "qa")
    bare = tmp_path / "bare.yaml"
    bare.write_text("plan: shop\nsteps:\n  - name: x\n    run: ['true']\n")
    plain = load_plan(bare).plan
    assert select_environment(plain, None) is None
    assert plain.service_key(None) == "shop"
    with pytest.raises(UsageError, match="declares no `environments:`"):
        select_environment(plain, "staging")
