"""Lint rules: each fires on its own problem and stays quiet otherwise."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from backout.cli import cli
from backout.errors import Issue
from backout.plans import load_plan
from backout.spec.lint import lint
from backout.spec.templating import SCOPE_NAMES

WritePlan = Callable[..., Path]

# A high-risk plan that satisfies every rule. Worst case: 10 + 3*30 + (1+2) retry delays
# + (30+10) for the check = 143s, well inside rto.
CLEAN = """\
plan: shop
risk: high
rto: 5m
roles:
  lead: alice@example.com
baseline:
  release: {readlink: current}
steps:
  - name: switch
    symlink: {link: current, target: "{{ baseline.release }}"}
    timeout: 10s
  - name: restart
    run: [./bin/restart, "{{ run.id }}"]
    timeout: 30s
    retries: 2
    idempotent: true
verify:
  - name: healthy
    http: {url: "http://127.0.0.1:1/health"}
    within: 30s
"""


def lint_text(write_plan: WritePlan, text: str) -> list[Issue]:
    return lint(load_plan(write_plan(text)))


def messages(issues: list[Issue]) -> list[str]:
    return [i.message for i in issues]


def test_clean_plan_has_no_issues(write_plan: WritePlan) -> None:
    assert lint_text(write_plan, CLEAN) == []


# --- high and critical risk -------------------------------------------------------------
@pytest.mark.parametrize("risk", ["high", "critical"])
def test_high_risk_without_verify(write_plan: WritePlan, risk: str) -> None:
    text = CLEAN.replace("risk: high", f"risk: {risk}").split("verify:")[0]
    issues = lint_text(write_plan, text)
    assert messages(issues) == [f"a {risk}-risk plan has no verify checks"]
    assert (issues[0].line, issues[0].field, issues[0].severity) == (2, "risk", "warning")
    assert "verify:" in issues[0].hint


def test_empty_verify_list_points_at_verify(write_plan: WritePlan) -> None:
    text = CLEAN.split("verify:")[0] + "verify: []\n"
    issues = lint_text(write_plan, text)
    assert messages(issues) == ["a high-risk plan has no verify checks"]
    assert (issues[0].line, issues[0].field) == (17, "verify")


def test_high_risk_without_rto(write_plan: WritePlan) -> None:
    issues = lint_text(write_plan, CLEAN.replace("rto: 5m\n", ""))
    assert messages(issues) == ["a high-risk plan has no rto"]
    assert "rto: 5m" in issues[0].hint


def test_high_risk_without_lead(write_plan: WritePlan) -> None:
    issues = lint_text(write_plan, CLEAN.replace("roles:\n  lead: alice@example.com\n", ""))
    assert messages(issues) == ["a high-risk plan names no roles.lead"]


def test_high_risk_with_roles_but_no_lead_points_at_roles(write_plan: WritePlan) -> None:
    text = CLEAN.replace("  lead: alice@example.com\n", "  approvers: [bob@example.com]\n")
    issues = lint_text(write_plan, text)
    assert messages(issues) == ["a high-risk plan names no roles.lead"]
    assert (issues[0].line, issues[0].field) == (4, "roles")


def test_high_risk_step_without_explicit_timeout(write_plan: WritePlan) -> None:
    issues = lint_text(write_plan, CLEAN.replace("    timeout: 10s\n", ""))
    assert messages(issues) == ["step 'switch' has no explicit timeout"]
    assert (issues[0].line, issues[0].field) == (9, "steps[0]")
    assert "the default is 60s" in issues[0].hint


def test_explicit_timeout_equal_to_the_default_counts(write_plan: WritePlan) -> None:
    assert lint_text(write_plan, CLEAN.replace("timeout: 10s", "timeout: 60s")) == []


@pytest.mark.parametrize("risk", ["low", "medium"])
def test_lower_risk_plans_need_none_of_it(write_plan: WritePlan, risk: str) -> None:
    text = (
        CLEAN.replace("risk: high", f"risk: {risk}")
        .replace("rto: 5m\n", "")
        .replace("roles:\n  lead: alice@example.com\n", "")
        .replace("    timeout: 10s\n", "")
        .replace("    timeout: 30s\n", "")
        .split("verify:")[0]
    )
    assert lint_text(write_plan, text) == []


# --- templates --------------------------------------------------------------------------
def test_template_naming_an_undeclared_baseline_value(write_plan: WritePlan) -> None:
    issues = lint_text(write_plan, CLEAN.replace("{{ baseline.release }}", "{{ baseline.relase }}"))
    assert messages(issues) == ["template uses baseline.relase, which `baseline:` does not define"]
    assert (issues[0].line, issues[0].field) == (10, "steps[0].symlink.target")
    assert issues[0].hint == "declare it under baseline: (known: release)"
    assert issues[0].severity == "warning"


def test_baseline_subscript_is_checked_too(write_plan: WritePlan) -> None:
    text = CLEAN.replace("{{ baseline.release }}", "{{ baseline['nope'] }}")
    assert messages(lint_text(write_plan, text)) == [
        "template uses baseline.nope, which `baseline:` does not define"
    ]


def test_undeclared_baseline_in_a_verify_check(write_plan: WritePlan) -> None:
    text = (
        CLEAN + '  - name: config\n    file_hash: {path: a.conf, equals: "{{ baseline.config }}"}\n'
    )
    issues = lint_text(write_plan, text)
    assert messages(issues) == ["template uses baseline.config, which `baseline:` does not define"]
    assert issues[0].field == "verify[1].file_hash.equals"
    assert issues[0].line == 22


def test_unknown_template_name(write_plan: WritePlan) -> None:
    issues = lint_text(write_plan, CLEAN.replace("{{ run.id }}", "{{ runn.id }}"))
    assert messages(issues) == ["template uses unknown name 'runn'"]
    assert issues[0].field == "steps[1].run[1]"
    assert issues[0].hint == "did you mean 'run'?"
    assert issues[0].severity == "error"


def test_unknown_template_name_far_from_any_lists_the_scope(write_plan: WritePlan) -> None:
    issues = lint_text(write_plan, CLEAN.replace("{{ run.id }}", "{{ xyzzy }}"))
    assert messages(issues) == ["template uses unknown name 'xyzzy'"]
    assert issues[0].hint == f"names in scope: {', '.join(sorted(SCOPE_NAMES))}"
    assert "baseline, change, env, environment, run, secrets" in issues[0].hint


def test_template_syntax_error_is_an_error(write_plan: WritePlan) -> None:
    issues = lint_text(write_plan, CLEAN.replace("{{ run.id }}", "{{ run.id }"))
    assert len(issues) == 1
    assert issues[0].severity == "error"
    assert issues[0].message.startswith("template does not parse:")
    assert (issues[0].line, issues[0].field) == (13, "steps[1].run[1]")


def test_template_inside_shell_is_warned_about(write_plan: WritePlan) -> None:
    text = CLEAN.replace(
        'run: [./bin/restart, "{{ run.id }}"]', "shell: ./bin/restart {{ baseline.release }}"
    )
    issues = lint_text(write_plan, text)
    assert messages(issues) == ["templates are not rendered in shell: scripts"]
    assert issues[0].hint == "read values from $BACKOUT_BASELINE_<NAME> instead"
    assert issues[0].field == "steps[1].shell"


def test_shell_without_templates_is_fine(write_plan: WritePlan) -> None:
    text = CLEAN.replace(
        'run: [./bin/restart, "{{ run.id }}"]', 'shell: ./bin/restart "$BACKOUT_BASELINE_RELEASE"'
    )
    assert lint_text(write_plan, text) == []


def with_template(template: str) -> str:
    return CLEAN.replace("{{ run.id }}", template)


@pytest.mark.parametrize(
    ("template", "message", "hint"),
    [
        (
            "{{ run.releas }}",
            "template uses run.releas, which does not exist",
            "did you mean 'release'?",
        ),
        (
            "{{ run['owner'] }}",
            "template uses run.owner, which does not exist",
            "`run` has: id, plan, service, actor, release, environment",
        ),
        (
            "{{ change.id }}",
            "template uses change.id, but `change` has no values yet",
            "remove it: `change` is reserved for change records",
        ),
        (
            "{{ secrets.token }}",
            "template uses secrets.token, which `secrets:` does not declare",
            "declare it under secrets:",
        ),
    ],
)
def test_keys_that_can_never_resolve_are_errors(
    write_plan: WritePlan, template: str, message: str, hint: str
) -> None:
    issues = lint_text(write_plan, with_template(template))
    assert [(i.message, i.hint, i.severity) for i in issues] == [(message, hint, "error")]
    assert (issues[0].line, issues[0].col, issues[0].field) == (13, 26, "steps[1].run[1]")


def test_a_near_miss_of_a_declared_secret(write_plan: WritePlan) -> None:
    text = with_template("{{ secrets.tokn }}").replace(
        "baseline:", "secrets:\n  token: {env: TOKEN}\nbaseline:"
    )
    issues = lint_text(write_plan, text)
    assert [(i.message, i.hint) for i in issues] == [
        ("template uses secrets.tokn, which `secrets:` does not declare", "did you mean 'token'?")
    ]


@pytest.mark.parametrize(
    "template",
    [
        "{{ run.release }}",
        "{{ run.get('id', 'none') }}",
        "{% for key, value in baseline.items() %}{{ key }}={{ value }}{% endfor %}",
        "{% set b = baseline %}{{ b.release }}",
        "{% set ns = namespace(n=0) %}{% for i in range(3) %}{{ loop.index }}{% endfor %}",
        "{{ env.get('REGION', 'eu-1') }}{{ env.ANYTHING_AT_ALL }}",
        "{% macro tag(x) %}<{{ x }}>{% endmacro %}{{ tag(run.id) }}",
    ],
)
def test_names_a_template_defines_and_jinja_globals_are_fine(
    write_plan: WritePlan, template: str
) -> None:
    assert lint_text(write_plan, with_template(template)) == []


DEPLOY = """\
plan: shop
steps:
  - name: back
    run: [./bin/back]
telemetry:
  errors:
    scrape: {url: "http://{{ env.HOST }}/metrics", metric: errors_total}
deploy:
  stages:
    - name: all
      steps:
        - name: switch
          run: [./bin/switch, "{{ run.release }}"]
          undo: {run: [./bin/undo, "{{ run.release }}"]}
"""


def test_deploy_steps_their_undo_and_telemetry_are_checked_too(write_plan: WritePlan) -> None:
    assert lint_text(write_plan, DEPLOY) == []
    text = (
        DEPLOY.replace("{{ env.HOST }}", "{{ enw.HOST }}")
        .replace('switch, "{{ run.release }}"', 'switch, "{{ run.relase }}"')
        .replace('undo, "{{ run.release }}"', 'undo, "{{ change.release }}"')
    )
    issues = lint_text(write_plan, text)
    assert [(i.field, i.message) for i in issues] == [
        ("telemetry.errors.scrape.url", "template uses unknown name 'enw'"),
        ("deploy.stages[0].steps[0].run[1]", "template uses run.relase, which does not exist"),
        (
            "deploy.stages[0].steps[0].undo.run[1]",
            "template uses change.release, but `change` has no values yet",
        ),
    ]
    assert all(i.severity == "error" for i in issues)


def test_validate_exits_2_on_a_name_that_can_never_resolve(
    write_plan: WritePlan, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_plan(with_template("{{ run.releas }}"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["validate", "plan.yaml"], obj={})
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        "error: plan.yaml:13:26: steps[1].run[1]: template uses run.releas, "  # as given
        "which does not exist (did you mean 'release'?)"
    ]


# --- retries and the time budget --------------------------------------------------------
def test_retries_on_a_non_idempotent_step(write_plan: WritePlan) -> None:
    issues = lint_text(write_plan, CLEAN.replace("    idempotent: true\n", ""))
    assert messages(issues) == ["step 'restart' retries but is not marked idempotent"]
    assert (issues[0].line, issues[0].field) == (15, "steps[1].retries")


def test_idempotent_without_retries_is_fine(write_plan: WritePlan) -> None:
    assert lint_text(write_plan, CLEAN.replace("    retries: 2\n", "")) == []


def test_worst_case_exceeding_rto(write_plan: WritePlan) -> None:
    issues = lint_text(write_plan, CLEAN.replace("rto: 5m", "rto: 2m"))
    assert messages(issues) == ["worst case (143s of timeouts and retries) exceeds rto (120s)"]
    assert (issues[0].line, issues[0].field) == (3, "rto")


def test_worst_case_counts_retry_backoff(write_plan: WritePlan) -> None:
    # 10 + 3*30 = 100s of timeouts, 40s for the check, and 1s + 2s of backoff: 143s
    assert lint_text(write_plan, CLEAN.replace("rto: 5m", "rto: 143s")) == []
    assert len(lint_text(write_plan, CLEAN.replace("rto: 5m", "rto: 141s"))) == 1


def test_worst_case_counts_a_check_timeout_after_its_window(write_plan: WritePlan) -> None:
    # the last attempt may start at the end of `within` and then take its whole timeout
    text = CLEAN.replace("rto: 5m", "rto: 135s")
    assert messages(lint_text(write_plan, text)) == [
        "worst case (143s of timeouts and retries) exceeds rto (135s)"
    ]


def test_issues_come_sorted_by_line(write_plan: WritePlan) -> None:
    text = (
        CLEAN.replace("rto: 5m", "rto: 1m")
        .replace("{{ run.id }}", "{{ runn }}")
        .replace("    idempotent: true\n", "")
    )
    issues = lint_text(write_plan, text)
    assert [i.field for i in issues] == ["rto", "steps[1].run[1]", "steps[1].retries"]


# --- the CLI ----------------------------------------------------------------------------
def test_validate_strict_turns_warnings_into_exit_2(
    write_plan: WritePlan, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_plan(CLEAN.replace("    idempotent: true\n", ""))
    monkeypatch.chdir(tmp_path)
    lenient = CliRunner().invoke(cli, ["validate", "plan.yaml"], obj={})
    strict = CliRunner().invoke(cli, ["validate", "--strict", "plan.yaml"], obj={})
    assert lenient.exit_code == 0, lenient.output
    assert "plan.yaml: valid (1 warning(s))" in lenient.stdout
    assert "warning: " in lenient.stderr
    assert strict.exit_code == 2, strict.output
    assert "error: " in strict.stderr
    assert "retries but is not marked idempotent" in strict.stderr
    assert "valid" not in strict.stdout


def test_validate_strict_on_a_clean_plan_is_0(
    write_plan: WritePlan, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_plan(CLEAN)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["validate", "--strict", "plan.yaml"], obj={})
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "plan.yaml: valid"


DEPLOY_PLAN = """
plan: p
rto: 1m
steps:
  - name: back
    run: ['true']
    timeout: 10s
deploy:
  stages:
    - name: one
      steps:
        - name: shift
          run: ['true']
          timeout: 10s
          undo: {run: ['true']}
        - name: let it settle
          wait: 5s
          timeout: 10s
"""


def test_a_wait_stage_step_needs_no_undo(write_plan: WritePlan) -> None:
    assert not [m for m in messages(lint_text(write_plan, DEPLOY_PLAN)) if "no reverse" in m]


def test_a_stage_step_that_changes_state_needs_an_undo(write_plan: WritePlan) -> None:
    text = DEPLOY_PLAN.replace("          undo: {run: ['true']}\n", "")
    assert any("'shift' has no reverse" in m for m in messages(lint_text(write_plan, text)))


def test_the_rto_budget_counts_a_deploy_s_undo_steps(write_plan: WritePlan) -> None:
    """An undo runs under its forward step's timeout when the deploy backs out."""
    within = lint_text(write_plan, DEPLOY_PLAN)
    assert not [m for m in messages(within) if "exceeds rto" in m]
    slow_undo = DEPLOY_PLAN.replace(
        "          timeout: 10s\n          undo:", "          timeout: 10m\n          undo:"
    )
    over = messages(lint_text(write_plan, slow_undo))
    assert any("worst case (610s of timeouts and retries) exceeds rto (60s)" in m for m in over)
