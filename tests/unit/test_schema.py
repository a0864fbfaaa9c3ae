"""`backout schema`: a valid JSON Schema that accepts what the loader accepts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from backout.cli import cli
from backout.plans import plan_schema

DESIGN_EXAMPLE = """\
plan: checkout
service: checkout
owner: payments-team
risk: high
rto: 2m
roles:
  lead: alice@example.com
  approvers: [bob@example.com]
baseline:
  release: {readlink: releases/current}
  config:  {file_hash: etc/checkout.conf}
steps:
  - name: point current at the previous release
    symlink: {link: releases/current, target: "{{ baseline.release }}"}
    timeout: 10s
  - name: restart the service
    run: [./bin/restart, checkout]
    timeout: 30s
    retries: 2
    idempotent: true
verify:
  - name: healthy
    http: {url: "http://127.0.0.1:8080/health", status: 200}
    within: 30s
  - name: config is the baseline's
    file_hash: {path: etc/checkout.conf, equals: "{{ baseline.config }}"}
"""


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    result = CliRunner().invoke(cli, ["schema"], obj={})
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def data(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def errors(validator: Draft202012Validator, plan: Any) -> list[str]:
    return [e.message for e in validator.iter_errors(plan)]


def test_cli_prints_the_same_schema_as_the_function() -> None:
    result = CliRunner().invoke(cli, ["schema"], obj={})
    schema = json.loads(result.stdout)
    assert schema == json.loads(json.dumps(plan_schema()))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["plan", "steps"]


def test_every_ref_resolves(validator: Draft202012Validator) -> None:
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            refs.extend([node["$ref"]] if "$ref" in node else [])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(validator.schema)
    assert refs
    for ref in refs:
        assert ref.startswith("#/$defs/")
        assert ref.removeprefix("#/$defs/") in validator.schema["$defs"], ref


def test_design_example_is_valid(validator: Draft202012Validator) -> None:
    assert errors(validator, data(DESIGN_EXAMPLE)) == []


def test_shorthands_and_nested_options_are_valid(validator: Draft202012Validator) -> None:
    plan = data(
        """
        plan: p
        baseline:
          a: {readlink: current}
          b: {file_hash: etc/app.conf}
          c: {http: "http://x/version"}
          d: {command: [git, rev-parse, HEAD]}
        steps:
          - {name: a, run: [echo, hi]}
          - {name: b, shell: "echo hi"}
          - {name: c, wait: 10s}
          - {name: d, wait: 3}
          - {name: e, wait: {http: {url: "http://x/health", status: 200}}}
          - {name: f, wait: {command: {argv: [./bin/ready]}, interval: 1s}}
          - {name: g, http: {url: "http://x/flags", json: {on: false}, status: [200, 204]}}
        verify:
          - {name: a, http: "http://x/health"}
          - {name: b, command: [./bin/status]}
          - {name: c, http: {url: "http://x/v", json: version, equals: "1.2"}}
        """
    )
    assert errors(validator, plan) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p.update(stepz=[]),
        lambda p: p["steps"][0].update(timout="5s"),
        lambda p: p["roles"].update(leed="a"),
        lambda p: p["steps"][1]["run"].append(3),
        lambda p: p["steps"][0].update(run=["echo"]),
        lambda p: p.update(risk="severe"),
        lambda p: p.update(rto="10 parsecs"),
        lambda p: p.pop("steps"),
        lambda p: p["steps"][0].pop("name"),
        lambda p: p["verify"][0]["http"].update(statsu=200),
        lambda p: p["baseline"].update(x={"readlnk": "a"}),
    ],
    ids=[
        "unknown top-level key",
        "unknown step key",
        "unknown role key",
        "argv item not a string",
        "two actions",
        "bad risk",
        "bad duration",
        "no steps",
        "no step name",
        "unknown check option",
        "unknown source kind",
    ],
)
def test_invalid_plans_are_rejected(validator: Draft202012Validator, mutate: Any) -> None:
    plan = data(DESIGN_EXAMPLE)
    mutate(plan)
    assert errors(validator, plan) != []


def test_unknown_key_inside_nested_wait_options_is_rejected(
    validator: Draft202012Validator,
) -> None:
    plan = {"plan": "p", "steps": [{"name": "w", "wait": {"http": {"url": "u", "bogus": 1}}}]}
    assert errors(validator, plan) != []
