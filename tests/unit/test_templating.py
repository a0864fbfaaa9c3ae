"""Templating: a Jinja2 sandbox, strict names, argv rendered element by element, and shell
scripts that get values only through the environment."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from backout import commands
from backout.actions.run import RunAction
from backout.errors import TemplateError
from backout.kernel.options import Context
from backout.plans import load_plan
from backout.settings import Settings
from backout.spec.templating import (
    SCOPE_NAMES,
    is_template,
    parse_error,
    references,
    render_text,
    render_value,
    usage,
    walk_strings,
)
from tests.callers import caller

WritePlan = Callable[..., Path]
SCOPE = {"baseline": {"release": "releases/v1"}, "run": {"id": "R1"}, "env": {}, "secrets": {}}
# what an attacker would like a rendered value to do; every one of these must stay text
HOSTILE = "v1; touch PWNED_SEMI $(touch PWNED_SUBST) `touch PWNED_TICK` && touch 'PWNED_AND'"
PWNED = ("PWNED_SEMI", "PWNED_SUBST", "PWNED_TICK", "PWNED_AND")

# prints its own argv as JSON: what the program really received
ARGV_PRINTER = "import json, sys; open('argv.json', 'w').write(json.dumps(sys.argv[1:]))"


# --- the sandbox ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__ }}",
        "{{ baseline.__class__.__subclasses__() }}",
        "{{ run.__init__.__globals__ }}",
    ],
)
def test_sandbox_blocks_attribute_escapes(template: str) -> None:
    with pytest.raises(TemplateError):
        render_text(template, SCOPE)


def test_sandbox_message_names_the_unsafe_attribute() -> None:
    with pytest.raises(TemplateError, match=r"__class__.*unsafe"):
        render_text("{{ ''.__class__.__mro__ }}", SCOPE)


def test_undefined_names_and_keys_raise_with_a_hint() -> None:
    with pytest.raises(TemplateError) as caught:
        render_text("{{ baseline.relase }}", SCOPE)
    assert "relase" in caught.value.message
    assert "backout snapshot" in caught.value.hint
    with pytest.raises(TemplateError, match="'nope' is undefined"):
        render_text("{{ nope }}", SCOPE)


def test_undefined_is_strict_even_inside_filters_and_tests() -> None:
    with pytest.raises(TemplateError):
        render_text("{{ baseline.missing | upper }}", SCOPE)


def test_syntax_error_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match=re.escape("template '{{ baseline.release }'")):
        render_text("{{ baseline.release }", SCOPE)


def test_rendering() -> None:
    assert render_text("{{ baseline.release }}/bin", SCOPE) == "releases/v1/bin"
    assert render_text("run {{ run.id }}", SCOPE) == "run R1"
    assert render_text("{{ baseline['release'] | upper }}", SCOPE) == "RELEASES/V1"


def test_plain_text_is_returned_as_is_even_with_braces() -> None:
    assert render_text("a } b { c", {}) == "a } b { c"
    assert not is_template("a } b { c")
    assert is_template("{{ x }}")
    assert is_template("{% if x %}{% endif %}")


def test_render_value_walks_lists_and_mappings_but_not_keys() -> None:
    value = {"{{ run.id }}": ["{{ baseline.release }}", 3, {"deep": "{{ run.id }}"}], "n": None}
    assert render_value(value, SCOPE) == {
        "{{ run.id }}": ["releases/v1", 3, {"deep": "R1"}],
        "n": None,
    }


def test_references_finds_names_and_baseline_keys() -> None:
    names, keys = references("{{ baseline.a }}-{{ baseline['b'] }}-{{ run.id }}-{{ other }}")
    assert names == {"baseline", "run", "other"}
    assert keys == {"a", "b"}
    assert references("no template") == (set(), set())
    assert references("{{ broken }") == (set(), set())
    assert {"baseline", "run", "change", "env", "secrets"} <= SCOPE_NAMES


def test_references_skip_names_the_template_defines_and_jinja_globals() -> None:
    names, keys = references(
        "{% set b = baseline %}{% for x in range(3) %}{{ x }}{{ loop.index }}{% endfor %}"
        "{% macro m(arg) %}{{ arg }}{% endmacro %}{{ m(b.release) }}{{ namespace(a=1).a }}"
    )
    assert names == {"baseline"}
    assert keys == set()  # b.release reads through a local name: not checked


def test_usage_collects_the_keys_of_each_scope_name() -> None:
    used = usage("{{ run.id }}{{ run['release'] }}{{ change.x }}{{ secrets.t }}{{ env.HOME }}")
    assert used.names == {"run", "change", "secrets", "env"}
    assert (used.keys_of("run"), used.keys_of("change")) == ({"id", "release"}, {"x"})
    assert (used.keys_of("secrets"), used.keys_of("baseline")) == ({"t"}, set())


def test_calling_a_read_method_is_not_a_key() -> None:
    used = usage("{{ run.get('id') }}{% for k, v in baseline.items() %}{{ k }}{% endfor %}")
    assert used.keys_of("run") == set()
    assert used.keys_of("baseline") == set()
    assert usage("{{ run.get }}").keys_of("run") == {"get"}  # not called: a key named get


def test_parse_error() -> None:
    assert parse_error("{{ fine }}") is None
    assert parse_error("{{ broken }") is not None


def test_walk_strings_paths() -> None:
    assert walk_strings({"a": ["x", {"b": "y"}], "n": 1}) == [(("a", 0), "x"), (("a", 1, "b"), "y")]


# --- argv: one element, one argument, no shell ------------------------------------------
def test_run_argv_is_rendered_element_by_element(write_plan: WritePlan, tmp_path: Path) -> None:
    loaded = load_plan(
        write_plan(
            f"""
            plan: p
            steps:
              - name: print argv
                run: ["{sys.executable}", -c, "{ARGV_PRINTER}", "{{{{ baseline.release }}}}",
                      "--to={{{{ baseline.release }}}}/bin", "{{{{ run.id }}}}"]
            """
        )
    )
    argv = render_value(loaded.plan.steps[0].options, {**SCOPE, "baseline": {"release": HOSTILE}})
    outcome = RunAction().execute(
        RunAction.Options.model_validate(argv), Context(tmp_path, timeout=10)
    )
    assert outcome.ok, outcome
    received = json.loads((tmp_path / "argv.json").read_text())
    assert received == [HOSTILE, f"--to={HOSTILE}/bin", "R1"]
    assert not any((tmp_path / name).exists() for name in PWNED)


def _hostile_release(tmp_path: Path) -> None:
    """A release whose name is a shell injection; `current` points at it."""
    (tmp_path / HOSTILE).mkdir()
    os.symlink(HOSTILE, tmp_path / "current")


def test_engine_passes_hostile_baseline_values_as_single_arguments(
    write_plan: WritePlan, tmp_path: Path
) -> None:
    _hostile_release(tmp_path)
    path = write_plan(
        f"""
        plan: p
        baseline:
          release: {{readlink: current}}
        steps:
          - name: print argv
            run: ["{sys.executable}", -c, "{ARGV_PRINTER}", "{{{{ baseline.release }}}}"]
            timeout: 10s
        """
    )
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'store.db'}", actor="test")
    assert commands.snapshot(caller(settings), path).values == {"release": HOSTILE}
    report = commands.run(caller(settings), path)
    assert report.status == "succeeded", report
    assert json.loads((tmp_path / "argv.json").read_text()) == [HOSTILE]
    assert not any((tmp_path / name).exists() for name in PWNED)


def test_shell_steps_are_never_templated_and_get_values_as_env(
    write_plan: WritePlan, tmp_path: Path
) -> None:
    _hostile_release(tmp_path)
    path = write_plan(
        """
        plan: p
        baseline:
          release: {readlink: current}
        steps:
          - name: script
            shell: |
              printf '%s' "$BACKOUT_BASELINE_RELEASE" > from-env.txt
              printf '%s' '{{ baseline.release }}' > from-template.txt
            timeout: 10s
        """
    )
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'store.db'}", actor="test")
    commands.snapshot(caller(settings), path)
    report = commands.run(caller(settings), path)
    assert report.status == "succeeded", report
    assert (tmp_path / "from-env.txt").read_text() == HOSTILE
    assert (tmp_path / "from-template.txt").read_text() == "{{ baseline.release }}"
    assert not any((tmp_path / name).exists() for name in PWNED)
