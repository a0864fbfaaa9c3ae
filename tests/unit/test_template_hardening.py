"""Templates can't crash or forge: every way rendering fails is one TemplateError naming the
template; the values in scope are read-only; `backout run` refuses `run.release`, which
only `backout deploy --release` sets; a dry run lists template errors instead of crashing."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from backout.cli import cli
from backout.engine.environment import RunEnvironment
from backout.engine.runner import environment
from backout.errors import TemplateError
from backout.plans import load_plan
from backout.spec.lint import needs_release
from backout.spec.models import Plan
from backout.spec.templating import MAX_OUTPUT, RUN_KEYS, SHOWN, render_text, render_value

WritePlan = Callable[..., Path]


def run_env() -> RunEnvironment:
    return RunEnvironment(
        Path("."),
        {"version": "v1"},
        {"token": "hunter2"},
        {"id": "R1", "plan": "p", "service": "s", "actor": "me", "release": ""},
        {"tags": ["a"]},
    )


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), obj={})


# --- nothing but TemplateError comes out of rendering -----------------------------------
FAILURES = [
    ("{{ 10 // (env.get('SHARDS', '0') | int) }}", "ZeroDivisionError: integer division"),
    ("{{ range(10 ** 6) | list }}", "OverflowError: Range too big"),
    ("{{ 1 + 'a' }}", "TypeError: unsupported operand"),
    ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recurses too deeply"),
    ("{{ 10 ** 5000 }}", "ValueError: Exceeds the limit (4300 digits)"),
    ("{{ 9 ** (9 ** 9) }}", "the power is too large"),
    ("{{ 'x' * 10 ** 10 }}", f"repeating that makes more than {MAX_OUTPUT} items"),
    ("{{ [0] * 10 ** 9 }}", f"repeating that makes more than {MAX_OUTPUT} items"),
    ("{{ 'x' | center(10 ** 9) }}", "1000000000 is larger than any template needs"),
    ("{{ 'x'.zfill(10 ** 9) }}", "1000000000 is larger than any template needs"),
    ("{{ '%999999999s' | format(1) }}", "999999999 is larger than any template needs"),
    ("{{ '%999999999s' % 1 }}", "999999999 is larger than any template needs"),
    ("{{ '{:>999999999}'.format(1) }}", "999999999 is larger than any template needs"),
    ("{% for i in range(99999) %}{{ 'x' * 99 }}{% endfor %}", "the output is longer than"),
    ("{{ " + "(" * 300 + "1" + ")" * 300 + " }}", "nests or recurses too deeply"),
    ("{% include 'other.yaml' %}", "TypeError: no loader"),
    ("{{ run.nope }}", "'dict object' has no attribute 'nope'"),
    ("{{ run.id }", "unexpected '}'"),
]


@pytest.mark.parametrize(("template", "what"), FAILURES)
def test_every_rendering_failure_is_a_template_error(template: str, what: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render_text(template, run_env().scope())
    assert caught.value.message.startswith("template ")
    assert what in caught.value.message
    assert caught.value.hint
    assert caught.value.exit_code == 2


def test_render_value_fails_the_same_way_inside_lists_and_mappings() -> None:
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        render_value({"argv": ["echo", "{{ 1 // 0 }}"]}, run_env().scope())


def test_a_long_template_is_shortened_in_the_message() -> None:
    template = "{{ 1 // 0 }}" + "x" * 500
    with pytest.raises(TemplateError) as caught:
        render_text(template, {})
    quoted = caught.value.message.split(": ZeroDivisionError")[0]
    assert quoted == "template " + repr(template[: SHOWN - 1] + "…")


def test_bounds_leave_ordinary_templates_alone() -> None:
    scope = run_env().scope()
    assert render_text("{{ '%-6s|%03d' % ('a', 7) }}", scope) == "a     |007"
    assert render_text("{{ '{}-{:>4}'.format(run.id, 1) }}", scope) == "R1-   1"
    assert render_text("{{ 2 ** 64 }} {{ 'ab' * 3 }} {{ 'x' | center(5) }}", scope) == (
        "18446744073709551616 ababab   x  "
    )
    assert render_text("{{ [1, 2, 3] | slice(2) | list }}", scope) == "[[1, 2], [3]]"


# a small grammar of expressions over the scope: what a plan's author might write, and worse
ATOMS = st.sampled_from(
    [
        "0", "1", "-1", "7", "2.5", "10 ** 6", "'v'", "''", "[]", "[1, 2]", "{}", "none",
        "true", "baseline", "baseline.version", "run", "run.id", "env", "secrets.token",
        "change", "change.tags", "range(3)", "namespace(a=1)", "lipsum",
    ]
)  # fmt: skip
SUFFIXES = st.sampled_from(
    [
        " + {}", " - {}", " * {}", " / {}", " // {}", " % {}", " ** {}", " ~ {}", " == {}",
        " < {}", " in {}", " and {}", " if {} else 0", "[{}]", "({})",
        " | int", " | length", " | first", " | list", " | join(',')", " | center({})",
        " | default({})", " | sum", " | sort", " | reverse", " | attr('update')",
        " | map('upper') | list", ".update({})", ".pop()", ".append({})", ".get({})",
        ".items()", ".__class__", ".zfill({})", ".format({})", "[{}:]",
    ]
)  # fmt: skip


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> str:
    text = draw(ATOMS)
    for suffix in draw(st.lists(SUFFIXES, max_size=4)):
        operand = draw(expressions(depth + 1)) if depth < 2 and draw(st.booleans()) else "1"
        text = f"({text}{suffix.format(operand)})"
    return text


def outcome(template: str, scope: dict[str, object]) -> str:
    """What rendering gives: the text, or the TemplateError's message (nothing else escapes)."""
    try:
        return render_text(template, scope)
    except TemplateError as exc:
        return exc.message


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(expression=expressions())
def test_generated_templates_render_or_raise_template_error_and_change_nothing(
    expression: str,
) -> None:
    env = run_env()
    scope = env.scope()
    before = copy.deepcopy(scope)
    assert isinstance(outcome("{{ " + expression + " }}", scope), str)
    assert scope == before
    assert env.scope()["baseline"] == {"version": "v1"}


# --- read-only values -------------------------------------------------------------------
FORGE = "{% set b = baseline %}{{ b.update({'version': 'v2-bad'}) }}"


@pytest.mark.parametrize(
    "template",
    [
        FORGE,
        "{{ baseline.pop('version') }}",
        "{{ baseline.clear() }}",
        "{{ baseline.setdefault('extra', 1) }}",
        "{{ baseline.__setitem__('version', 'x') }}",
        "{{ (baseline | attr('update'))({'version': 'x'}) }}",
        "{{ run.update({'release': 'v9'}) }}",
        "{{ secrets.pop('token') }}",
        "{{ change.tags.append('forged') }}",
        "{{ change.tags.extend(['forged']) }}",
    ],
)
def test_templates_cannot_change_what_they_read(template: str) -> None:
    env = run_env()
    scope = env.scope()
    before = copy.deepcopy(scope)
    with pytest.raises(TemplateError) as caught:
        render_text(template, scope)
    assert "unsafe" in caught.value.message
    assert "never change them" in caught.value.hint
    assert scope == before
    assert render_text("{{ baseline.version }}", env.scope()) == "v1"


def test_each_scope_is_a_copy_of_the_run_values() -> None:
    env = run_env()
    scope = env.scope()
    scope["baseline"]["version"] = "v2-bad"
    scope["change"]["tags"].append("forged")
    assert env.scope()["baseline"] == {"version": "v1"}
    assert env.scope()["change"] == {"tags": ["a"]}


def test_the_forge_attempt_fails_its_step_and_verify_still_sees_the_baseline(
    tmp_path: Path, write_plan: WritePlan, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the step rewrote baseline.version and the check below passed against it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "LIVE").write_text("v2-bad\n")
    write_plan(
        f"""
        plan: forge
        baseline:
          version: {{command: [echo, v1]}}
        steps:
          - name: forge the baseline
            run: [echo, "{FORGE}"]
            on_failure: continue
        verify:
          - name: live is the baseline
            command: {{argv: [cat, LIVE], contains: "{{{{ baseline.version }}}}"}}
        """
    )
    db = f"sqlite:///{tmp_path / 'backout.db'}"
    assert invoke("--db", db, "snapshot", "plan.yaml").exit_code == 0
    result = invoke("--db", db, "run", "--json", "plan.yaml")
    report = json.loads(result.stdout)
    assert result.exit_code == 1, result.output
    assert report["steps"][0]["status"] == "failed"
    assert "'update' of 'dict' object is unsafe" in report["steps"][0]["summary"]
    assert report["checks"][0]["passed"] is False
    assert report["checks"][0]["reason"] == "output does not contain 'v1'"


def test_run_keys_are_what_the_engine_puts_in_run(tmp_path: Path) -> None:
    plan = Plan.model_validate(
        {"plan": "p", "steps": [{"name": "s", "kind": "run", "options": []}]}
    )
    row = SimpleNamespace(id="R1", plan="p", service="p", actor="me", plan_doc={}, snapshot_id=None)
    env = environment(SimpleNamespace(url="sqlite://"), row, plan, tmp_path)  # type: ignore[arg-type]
    assert sorted(env.run) == sorted(RUN_KEYS)


# --- run.release outside `backout deploy` -----------------------------------------------
RELEASE_PLAN = """
plan: rel
baseline:
  release: {readlink: current}
steps:
  - name: tag the release
    run: [echo, "{{ run.release }}"]
  - name: switch back
    symlink: {link: current, target: "{{ baseline.release }}"}
verify:
  - name: release is live
    command: {argv: [cat, current/VERSION], contains: "{{ run['release'] }}"}
"""


def test_backout_run_refuses_run_release_before_creating_anything(
    tmp_path: Path, write_plan: WritePlan, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_plan(RELEASE_PLAN)
    result = invoke("--db", f"sqlite:///{tmp_path / 'backout.db'}", "run", "plan.yaml")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert "plan.yaml:6:17: steps[0].run[1]: step 'tag the release' uses run.release" in lines[0]
    assert "only `backout deploy --release` sets" in lines[0]
    assert "{{ baseline.release }}" in lines[0]
    assert "verify[0].command.contains: check 'release is live' uses run.release" in lines[1]
    assert not (tmp_path / "backout.db").exists()  # refused before the store was opened


def test_run_release_stays_fine_where_deploy_sets_it(write_plan: WritePlan) -> None:
    path = write_plan(
        """
        plan: rel
        steps:
          - name: switch back
            run: [echo, back]
        deploy:
          stages:
            - name: all at once
              steps:
                - name: switch to the new release
                  run: [echo, "{{ run.release }}"]
                  undo: {run: [echo, "undo {{ run.release }}"]}
        """
    )
    result = invoke("validate", str(path))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_a_shell_script_is_never_rendered_so_run_release_there_is_not_refused(
    write_plan: WritePlan,
) -> None:
    path = write_plan(RELEASE_PLAN)
    assert [i.field for i in needs_release(load_plan(path))] == [
        "steps[0].run[1]",
        "verify[0].command.contains",
    ]
    text = RELEASE_PLAN.replace('run: [echo, "{{ run.release }}"]', "shell: echo {{ run.release }}")
    assert [i.field for i in needs_release(load_plan(write_plan(text)))] == [
        "verify[0].command.contains"
    ]


def test_dry_run_lists_run_release_as_a_problem(
    tmp_path: Path, write_plan: WritePlan, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_plan(RELEASE_PLAN)
    db = f"sqlite:///{tmp_path / 'backout.db'}"
    result = invoke("--db", db, "run", "--dry-run", "--json", "plan.yaml")
    assert result.exit_code == 1, result.output  # problems listed: the real run is refused
    problems = json.loads(result.stdout)["problems"]
    assert any("step 'tag the release' uses run.release" in p for p in problems)
    assert json.loads(result.stdout)["steps"][0]["rendered"] == ["echo", ""]  # as `run` would


# --- dry runs never crash on a template -------------------------------------------------
def test_dry_run_names_the_step_whose_template_fails_and_hides_secrets(
    tmp_path: Path, write_plan: WritePlan, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TOKEN", "hunter2")
    write_plan(
        """
        plan: shards
        secrets:
          token: {env: TOKEN}
        steps:
          - name: split the work
            run: [echo, "{{ 10 // (env.get('SHARDS', '0') | int) }}"]
          - name: look the token up
            run: [echo, "{{ {}[secrets.token] }}"]
        verify:
          - name: power
            command: [echo, "{{ 9 ** (9 ** 9) }}"]
        """
    )
    result = invoke("--db", f"sqlite:///{tmp_path / 'x.db'}", "run", "--dry-run", "plan.yaml")
    assert result.exit_code == 1, result.output  # problems listed
    assert "Traceback" not in result.output
    assert "split the work: template" in result.stdout
    assert "ZeroDivisionError" in result.stdout
    assert "look the token up: template" in result.stdout
    assert "power: template" in result.stdout
    assert "the power is too large" in result.stdout
    assert "hunter2" not in result.output
