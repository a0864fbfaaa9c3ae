"""The platform actions' options, parsers and shared tool runner, without the tools."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from backout.actions import ACTIONS
from backout.actions.ansible import PLUGINS
from backout.actions.argocd import ArgocdOptions
from backout.actions.helm import HelmOptions
from backout.actions.kubectl import KubectlOptions
from backout.actions.terraform import summarise
from backout.errors import ActionError
from backout.kernel.options import Context
from backout.plans import plan_schema
from backout.probes import SOURCES
from backout.probes.sqitch import split_password
from backout.probes.toolcli import read_json, run_tool
from backout.proc import TAIL_BYTES
from backout.redact import Redactor

KINDS = ["sqitch", "ansible", "kubectl", "helm", "argocd", "terraform", "tofu"]


def test_every_platform_kind_is_installed_and_in_the_schema() -> None:
    assert set(KINDS) <= set(ACTIONS.names())
    assert {"sqitch", "kubectl", "helm", "argocd", "terraform"} <= set(SOURCES.names())
    steps = plan_schema()["properties"]["steps"]["items"]["oneOf"]
    named = {key for variant in steps for key in variant["properties"]}
    assert set(KINDS) <= named
    assert ACTIONS.get("tofu").Options.model_validate({}).program == "tofu"
    assert ACTIONS.get("terraform").Options.model_validate({}).program == "terraform"


@pytest.mark.parametrize(
    ("uri", "bare", "password"),
    [
        ("db:pg://app:s3cret@db:5432/shop", "db:pg://app@db:5432/shop", "s3cret"),
        ("db:pg://app:p%40ss%2Fword@db/shop", "db:pg://app@db/shop", "p@ss/word"),
        ("db:pg://app@db/shop", "db:pg://app@db/shop", None),
        ("db:pg:shop", "db:pg:shop", None),
        ("production", "production", None),  # a target named in sqitch.conf
    ],
)
def test_a_password_is_taken_out_of_the_sqitch_uri(
    uri: str, bare: str, password: str | None
) -> None:
    assert split_password(uri) == (bare, password)


def test_revisions_are_numbers_or_templates_of_one() -> None:
    options = {"resource": "deployment/shop", "to_revision": "{{ baseline.revision }}"}
    assert KubectlOptions.model_validate(options).to_revision == "{{ baseline.revision }}"
    assert HelmOptions.model_validate({"release": "shop", "revision": "4"}).revision == 4
    with pytest.raises(ValidationError, match="'v4' is not a revision number"):
        HelmOptions.model_validate({"release": "shop", "revision": "v4"})
    with pytest.raises(ValidationError, match="write KIND/NAME"):
        KubectlOptions.model_validate({"resource": "shop"})
    with pytest.raises(ValidationError, match="restore_sync"):
        ArgocdOptions.model_validate({"app": "a", "revision": "r", "restore_sync": "later"})


def test_terraform_plan_summary_counts_every_change_and_lists_fifty() -> None:
    changes = [
        {"address": f"null_resource.n[{i}]", "change": {"actions": ["create"]}} for i in range(60)
    ]
    changes += [
        {"address": "aws_instance.web", "change": {"actions": ["create", "delete"]}},
        {"address": "aws_s3_bucket.logs", "change": {"actions": ["no-op"]}},
        {"address": "data.aws_ami.base", "change": {"actions": ["read"]}},
        {"address": "aws_iam_role.old", "change": {"actions": ["delete"]}},
    ]
    counts, addresses = summarise({"format_version": "1.2", "resource_changes": changes})
    assert counts == {"create": 60, "update": 0, "replace": 1, "delete": 1}
    assert len(addresses["create"]) == 50
    assert addresses["replace"] == ["aws_instance.web"]
    assert list(addresses) == ["create", "replace", "delete"]


def test_the_tool_runner_keeps_large_json_whole(tmp_path: Path) -> None:
    ctx = Context(tmp_path, 20.0, {}, Redactor(["hidden-value"]))
    big = {"items": ["x" * 100] * 1000, "token": "hidden-value"}
    script = f"import json, sys; print(json.dumps({big!r})); print('warn', file=sys.stderr)"
    result = run_tool([sys.executable, "-c", script], ctx, timeout=20.0)
    assert len(result.stdout) > 20 * TAIL_BYTES  # not the step output's tail
    assert read_json(result, ctx) == big
    assert result.stderr.strip() == "warn"


def test_the_tool_runner_says_what_failed_redacted(tmp_path: Path) -> None:
    ctx = Context(tmp_path, 20.0, {}, Redactor(["hidden-value"]))
    script = "import sys; print('Error: hidden-value rejected', file=sys.stderr); sys.exit(3)"
    result = run_tool([sys.executable, "-c", script], ctx, timeout=20.0)
    with pytest.raises(ActionError) as caught:
        read_json(result, ctx)
    assert "exit code 3: Error: *** rejected" in caught.value.message
    not_json = run_tool([sys.executable, "-c", "print('Usage: helm')"], ctx, timeout=20.0)
    with pytest.raises(ActionError, match="did not print JSON"):
        read_json(not_json, ctx)
    with pytest.raises(ActionError, match="command not found: no-such-tool"):
        run_tool(["no-such-tool"], ctx, timeout=5.0)


def test_the_ansible_callback_ships_with_the_package() -> None:
    plugin = Path(PLUGINS) / "backout_results.py"
    text = plugin.read_text(encoding="utf-8")
    assert 'CALLBACK_NAME = "backout_results"' in text
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"actions/ansible_plugins/*.py"' in pyproject


@pytest.mark.parametrize(
    ("kind", "options", "line"),
    [
        (
            "sqitch",
            {"target": "db:pg://app:pw@db/shop", "action": "revert", "to": "@v1"},
            "sqitch revert to @v1 on db:pg://app@db/shop",
        ),
        ("ansible", {"playbook": "site.yaml", "check": True}, "ansible-playbook site.yaml --check"),
        (
            "kubectl",
            {"resource": "deployment/shop", "to_revision": 3},
            "kubectl rollout undo deployment/shop to revision 3",
        ),
        ("helm", {"release": "shop"}, "helm rollback shop to the previous revision"),
        (
            "tofu",
            {"dir": "infra", "max_destroy": 0},
            "tofu plan and apply in infra, at most 0 destroyed",
        ),
    ],
)
def test_describe_is_one_runbook_line(kind: str, options: dict[str, object], line: str) -> None:
    action = ACTIONS.get(kind)
    assert action.describe(action.Options.model_validate(options)) == line
