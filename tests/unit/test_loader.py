"""The loader: every problem is `FILE:LINE:COL: field: message (hint)` at the right place."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from backout.actions import ACTIONS
from backout.actions.run import RunOptions
from backout.actions.wait import WaitOptions
from backout.errors import Issue, PlanError, UsageError
from backout.plans import load_plan
from backout.probes.command import CommandOptions
from backout.probes.files import PathOptions
from backout.probes.http import HttpCheckOptions
from backout.spec.loader import LoadedPlan
from backout.spec.yamlfile import MAX_ALIAS_NODES, MAX_DEPTH

WritePlan = Callable[..., Path]

# The example plan from DESIGN.md, verbatim.
DESIGN_EXAMPLE = """\
plan: checkout                 # unique name
service: checkout              # one active run per service at a time
owner: payments-team
risk: high                     # low | medium | high | critical
rto: 2m                        # time budget for the whole backout
roles:
  lead: alice@example.com
  approvers: [bob@example.com]
baseline:                      # captured before a deploy: the last known good state
  release: {readlink: releases/current}
  config:  {file_hash: etc/checkout.conf}
steps:                         # the backout, in order
  - name: point current at the previous release
    symlink: {link: releases/current, target: "{{ baseline.release }}"}
    timeout: 10s
  - name: restart the service
    run: [./bin/restart, checkout]          # argv list: no shell, no injection
    timeout: 30s
    retries: 2
    idempotent: true
verify:                        # what "restored" means; checked after the steps
  - name: healthy
    http: {url: "http://127.0.0.1:8080/health", status: 200}
    within: 30s
  - name: config is the baseline's
    file_hash: {path: etc/checkout.conf, equals: "{{ baseline.config }}"}
"""


def issues_of(path: Path) -> list[Issue]:
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    return caught.value.issues


def only_issue(path: Path) -> Issue:
    issues = issues_of(path)
    assert len(issues) == 1, [str(i) for i in issues]
    return issues[0]


def where(issue: Issue) -> tuple[int, int, str]:
    return issue.line, issue.col, issue.field


# --- valid plans ------------------------------------------------------------------------
def test_design_example_loads_with_every_field_typed(write_plan: WritePlan) -> None:
    loaded = load_plan(write_plan(DESIGN_EXAMPLE))
    plan = loaded.plan
    assert (plan.plan, plan.service_name, plan.risk, plan.rto) == (
        "checkout",
        "checkout",
        "high",
        120.0,
    )
    assert plan.roles.lead == "alice@example.com"
    assert plan.roles.approvers == ["bob@example.com"]
    assert {name: src.kind for name, src in plan.baseline.items()} == {
        "release": "readlink",
        "config": "file_hash",
    }
    assert [(s.kind, s.timeout, s.retries, s.idempotent) for s in plan.steps] == [
        ("symlink", 10.0, 0, False),
        ("run", 30.0, 2, True),
    ]
    assert plan.steps[1].options == ["./bin/restart", "checkout"]
    assert [(c.kind, c.within) for c in plan.verify] == [("http", 30.0), ("file_hash", 0.0)]


def test_loaded_plan_knows_its_folder(write_plan: WritePlan, tmp_path: Path) -> None:
    loaded = load_plan(write_plan(DESIGN_EXAMPLE))
    assert loaded.base_dir == tmp_path.resolve()
    assert loaded.path.is_absolute()


def test_version_ignores_comments_but_not_content(write_plan: WritePlan) -> None:
    first = load_plan(write_plan(DESIGN_EXAMPLE, "a.yaml")).version
    no_comments = "\n".join(line.split("  #")[0] for line in DESIGN_EXAMPLE.splitlines())
    same = load_plan(write_plan(no_comments, "b.yaml")).version
    edited = load_plan(write_plan(DESIGN_EXAMPLE.replace("timeout: 30s", "timeout: 31s"), "c.yaml"))
    assert first == same
    assert edited.version != first


def test_defaults_are_safe(write_plan: WritePlan) -> None:
    plan = load_plan(write_plan("plan: p\nsteps:\n  - {name: a, run: [echo]}\n")).plan
    step = plan.steps[0]
    assert (plan.risk, plan.rto, plan.service_name, plan.verify) == ("medium", None, "p", [])
    assert (step.timeout, step.retries, step.idempotent, step.on_failure) == (
        60.0,
        0,
        False,
        "stop",
    )


def test_shorthand_forms_validate(write_plan: WritePlan) -> None:
    loaded = load_plan(
        write_plan(
            """
            plan: shorthands
            baseline:
              release: {readlink: releases/current}
              config: {file_hash: etc/app.conf}
              version: {http: "http://127.0.0.1:1/version"}
              head: {command: [git, rev-parse, HEAD]}
            steps:
              - name: restart
                run: [./bin/restart, app]
              - name: settle
                wait: 2s
              - name: settle by number
                wait: 3
            verify:
              - name: up
                http: "http://127.0.0.1:1/health"
              - name: cli says ok
                command: [./bin/status]
            """
        )
    )
    plan = loaded.plan
    assert PathOptions.model_validate(plan.baseline["release"].options).path == "releases/current"
    assert PathOptions.model_validate(plan.baseline["config"].options).path == "etc/app.conf"
    assert RunOptions.model_validate(plan.steps[0].options).argv == ["./bin/restart", "app"]
    assert WaitOptions.model_validate(plan.steps[1].options).delay == 2.0
    assert WaitOptions.model_validate(plan.steps[2].options).delay == 3.0
    check = HttpCheckOptions.model_validate(plan.verify[0].options)
    assert (check.url, check.method, check.status) == ("http://127.0.0.1:1/health", "GET", 200)
    assert CommandOptions.model_validate(plan.verify[1].options).argv == ["./bin/status"]


# --- the error format -------------------------------------------------------------------
def test_error_renders_as_file_line_col_field_message_hint(write_plan: WritePlan) -> None:
    path = write_plan(
        """
        plan: p
        stepz: []
        steps:
          - {name: a, run: [echo]}
        """
    )
    issue = only_issue(path)
    assert str(issue) == f"{path}:2:1: stepz: unknown key 'stepz' (did you mean 'steps'?)"
    assert issue.severity == "error"


def test_plan_error_is_a_usage_error_listing_every_issue(write_plan: WritePlan) -> None:
    path = write_plan("owner: nobody\n")
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    error = caught.value
    assert isinstance(error, UsageError)
    assert error.exit_code == 2
    assert str(error).splitlines() == [str(i) for i in error.issues]


# --- unknown keys with suggestions ------------------------------------------------------
def test_unknown_key_in_step_suggests_the_field(write_plan: WritePlan) -> None:
    issue = only_issue(
        write_plan(
            """
            plan: p
            steps:
              - name: a
                run: [echo]
                timout: 5s
            """
        )
    )
    assert where(issue) == (5, 5, "steps[0].timout")
    assert issue.message == "unknown key 'timout'"
    assert issue.hint == "did you mean 'timeout'?"


def test_unknown_key_in_roles_suggests_lead(write_plan: WritePlan) -> None:
    issue = only_issue(
        write_plan(
            """
            plan: p
            roles:
              leed: alice
            steps:
              - {name: a, run: [echo]}
            """
        )
    )
    assert where(issue) == (3, 3, "roles.leed")
    assert issue.hint == "did you mean 'lead'?"


def test_unknown_key_inside_action_options(write_plan: WritePlan) -> None:
    issue = only_issue(
        write_plan(
            """
            plan: p
            steps:
              - name: a
                run:
                  argv: [echo]
                  envv: {A: b}
            """
        )
    )
    assert where(issue) == (6, 7, "steps[0].run.envv")
    assert (issue.message, issue.hint) == ("unknown key 'envv'", "did you mean 'env'?")


def test_unknown_key_inside_flow_style_check_options(write_plan: WritePlan) -> None:
    issue = only_issue(
        write_plan(
            """
            plan: p
            steps:
              - {name: a, run: [echo]}
            verify:
              - name: up
                http: {url: "http://x", statsu: 200}
            """
        )
    )
    assert where(issue) == (6, 29, "verify[0].http.statsu")
    assert issue.hint == "did you mean 'status'?"


def test_unknown_key_with_no_close_match_lists_the_allowed_keys(write_plan: WritePlan) -> None:
    issue = only_issue(write_plan("plan: p\nzzz: 1\nsteps:\n  - {name: a, run: [echo]}\n"))
    assert issue.hint.startswith("allowed keys: plan, service, owner, risk, rto")


# --- action kinds -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "position", "message", "hint"),
    [
        (
            "plan: p\nsteps:\n  - name: b\n    rnu: [x]\n",
            (4, 5, "steps[0].rnu"),
            "unknown action 'rnu'",
            "did you mean 'run'?",
        ),
        (
            "plan: p\nsteps:\n  - name: b\n    symlnk: {link: a, target: b}\n",
            (4, 5, "steps[0].symlnk"),
            "unknown action 'symlnk'",
            "did you mean 'symlink'?",
        ),
        (
            "plan: p\nsteps:\n  - {name: a, run: [echo]}\nverify:\n  - name: b\n    htp: x\n",
            (6, 5, "verify[0].htp"),
            "unknown check 'htp'",
            "did you mean 'http'?",
        ),
    ],
)
def test_unknown_kind_suggests_the_closest(
    write_plan: WritePlan, text: str, position: tuple[int, int, str], message: str, hint: str
) -> None:
    issue = only_issue(write_plan(text))
    assert where(issue) == position
    assert (issue.message, issue.hint) == (message, hint)


def test_unknown_baseline_source_suggests_readlink(write_plan: WritePlan) -> None:
    issue = only_issue(
        write_plan(
            """
            plan: p
            baseline:
              release: {readlnk: current}
            steps:
              - {name: a, run: [echo]}
            """
        )
    )
    assert where(issue) == (3, 13, "baseline.release.readlnk")
    assert (issue.message, issue.hint) == (
        "unknown source 'readlnk'",
        "did you mean 'readlink'?",
    )


def test_two_actions_in_one_step(write_plan: WritePlan) -> None:
    issue = only_issue(
        write_plan(
            """
            plan: p
            steps:
              - name: both
                run: [echo]
                shell: echo hi
            """
        )
    )
    assert where(issue) == (5, 5, "steps[0].shell")
    assert issue.message == "more than one action: run, shell"
    assert "one action each" in issue.hint


def test_step_without_an_action_lists_them(write_plan: WritePlan) -> None:
    issue = only_issue(write_plan("plan: p\nsteps:\n  - name: nothing\n    timeout: 5s\n"))
    assert where(issue) == (3, 5, "steps[0]")
    assert issue.message == "no action given"
    assert issue.hint == f"expected one of: {', '.join(ACTIONS.names())}"
    for kind in ("run", "shell", "symlink", "alembic", "sqitch"):
        assert kind in issue.hint


# --- required fields --------------------------------------------------------------------
def test_missing_plan_and_steps_are_both_reported(write_plan: WritePlan) -> None:
    issues = issues_of(write_plan("owner: team\n"))
    assert [(i.field, i.message, i.line, i.col) for i in issues] == [
        ("plan", "is required", 1, 1),
        ("steps", "is required", 1, 1),
    ]
    assert issues[0].hint == "name the plan, e.g. `plan: checkout`"
    assert issues[1].hint == "add at least one step under `steps:`"


def test_missing_step_name(write_plan: WritePlan) -> None:
    issue = only_issue(write_plan("plan: p\nsteps:\n  - run: [echo]\n"))
    assert where(issue) == (3, 5, "steps[0].name")
    assert issue.message == "is required"
    assert "name:" in issue.hint


def test_empty_steps_list(write_plan: WritePlan) -> None:
    issue = only_issue(write_plan("plan: p\nsteps: []\n"))
    assert where(issue) == (2, 1, "steps")
    assert "at least 1 item" in issue.message


# --- values -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ("    timeout: 10 parsecs", "steps[0].timeout", "'10 parsecs' is not a duration"),
        ("    timeout: -5", "steps[0].timeout", "a duration cannot be negative"),
        ("    retry_delay: soon", "steps[0].retry_delay", "'soon' is not a duration"),
        ("    timeout: true", "steps[0].timeout", "expected a duration like 500ms"),
    ],
)
def test_bad_step_durations(write_plan: WritePlan, line: str, field: str, message: str) -> None:
    issue = only_issue(write_plan(f"plan: p\nsteps:\n  - name: a\n    run: [echo]\n{line}\n"))
    assert (issue.line, issue.col, issue.field) == (5, 5, field)
    assert issue.message.startswith(message)


def test_bad_rto_and_check_durations(write_plan: WritePlan) -> None:
    issues = issues_of(
        write_plan(
            """
            plan: p
            rto: two minutes
            steps:
              - {name: a, run: [echo]}
            verify:
              - name: up
                http: "http://x"
                within: 3 fortnights
            """
        )
    )
    assert [where(i) for i in issues] == [(2, 1, "rto"), (8, 5, "verify[0].within")]
    assert all("expected a number with ms, s, m or h" in i.message for i in issues)


def test_bad_risk_literal(write_plan: WritePlan) -> None:
    issue = only_issue(write_plan("plan: p\nrisk: severe\nsteps:\n  - {name: a, run: [echo]}\n"))
    assert where(issue) == (2, 1, "risk")
    assert "'low', 'medium', 'high' or 'critical'" in issue.message
    assert issue.hint == "use one of the values listed"


def test_bad_names(write_plan: WritePlan) -> None:
    issues = issues_of(
        write_plan(
            """
            plan: "two words"
            service: "also two"
            steps:
              - {name: a, run: [echo]}
            """
        )
    )
    assert [where(i)[:2] for i in issues] == [(1, 1), (2, 1)]
    assert issues[1].message == "use letters, digits, '.', '_' or '-'"


def test_baseline_names_must_be_identifiers(write_plan: WritePlan) -> None:
    issue = only_issue(
        write_plan(
            """
            plan: p
            baseline:
              my-release: {readlink: current}
            steps:
              - {name: a, run: [echo]}
            """
        )
    )
    assert issue.field == "baseline"
    assert "'my-release' must be an identifier" in issue.message


def test_run_given_a_string_suggests_a_list_or_shell(write_plan: WritePlan) -> None:
    issue = only_issue(write_plan("plan: p\nsteps:\n  - name: a\n    run: ./bin/restart app\n"))
    assert where(issue) == (4, 5, "steps[0].run")
    assert "write ['./bin/restart', 'app']" in issue.message
    assert "use a `shell:` step if you need a shell" in issue.message


def test_command_check_given_a_string_suggests_a_list(write_plan: WritePlan) -> None:
    text = "plan: p\nsteps:\n  - {name: a, run: [echo]}\nverify:\n  - name: c\n    command: ls -l\n"
    issue = only_issue(write_plan(text))
    assert where(issue) == (6, 5, "verify[0].command")
    assert "['ls', '-l']" in issue.message


def test_wait_needs_exactly_one_mode(write_plan: WritePlan) -> None:
    issue = only_issue(
        write_plan("plan: p\nsteps:\n  - name: w\n    wait: {delay: 1s, command: [x]}\n")
    )
    assert where(issue) == (4, 5, "steps[0].wait")
    assert issue.message == "give exactly one of delay, http or command"


# --- documents that are not plans -------------------------------------------------------
def test_invalid_yaml_reports_the_position(write_plan: WritePlan) -> None:
    path = write_plan("plan: p\n  bad: indent\nsteps: []\n")
    issue = only_issue(path)
    assert (issue.line, issue.col, issue.field) == (2, 6, "-")
    assert issue.message == "invalid YAML: mapping values are not allowed here"
    assert str(issue).startswith(f"{path}:2:6: invalid YAML")


def test_duplicate_key_is_invalid_yaml(write_plan: WritePlan) -> None:
    issue = only_issue(write_plan("plan: a\nplan: b\nsteps:\n  - {name: a, run: [echo]}\n"))
    assert issue.line == 2
    assert 'duplicate key "plan"' in issue.message


def test_tab_indentation_is_reported_on_its_line(write_plan: WritePlan) -> None:
    issue = only_issue(write_plan("plan: p\nsteps:\n\t- name: a\n"))
    assert issue.line == 3
    assert issue.message.startswith("invalid YAML")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    issue = only_issue(path)
    assert str(issue) == f"{path}: no such file"  # no line to name, no field


def test_unreadable_file_is_a_plan_error_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00plan")
    issue = only_issue(path)
    assert (issue.line, issue.col, issue.message) == (1, 1, "byte 0xff is not valid UTF-8")
    assert issue.hint == "save the file as UTF-8"


def test_invalid_utf8_is_pinned_to_its_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("plan: p\nowner: Jos\u00e9\n".encode("latin-1"))
    issue = only_issue(path)
    assert (issue.line, issue.col, issue.message) == (2, 11, "byte 0xe9 is not valid UTF-8")


def test_a_folder_is_a_plan_error(tmp_path: Path) -> None:
    assert only_issue(tmp_path).message == "is a folder, not a file"


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "", "# only a comment\n"])
def test_non_mapping_document(write_plan: WritePlan, text: str) -> None:
    issue = only_issue(write_plan(text))
    assert (issue.line, issue.col, issue.field) == (1, 1, "-")
    assert issue.message == "a plan must be a mapping of keys (plan:, steps: …)"
    assert issue.hint == "see `backout init`"


def test_step_that_is_not_a_mapping(write_plan: WritePlan) -> None:
    issue = only_issue(write_plan("plan: p\nsteps:\n  - {name: a, run: [echo]}\n  - echo hi\n"))
    assert where(issue) == (4, 5, "steps[1]")
    assert issue.hint == "check the indentation and the shape of this value"


# --- bounds: what a plan file may be -----------------------------------------------------
def nested(depth: int) -> str:
    """A plan whose first step's argv is nested ``depth`` levels below the document."""
    # the document, steps, a step and http are 4 levels, each [ one more, and x the last
    inner = "[" * (depth - 5) + "x" + "]" * (depth - 5)
    return f"plan: p\nsteps:\n  - name: s\n    http: {{url: 'http://h/', json: {inner}}}\n"


def test_nesting_up_to_the_limit_loads_and_one_more_level_does_not(
    write_plan: WritePlan,
) -> None:
    assert load_plan(write_plan(nested(MAX_DEPTH))).plan.steps[0].kind == "http"
    issue = only_issue(write_plan(nested(MAX_DEPTH + 1)))
    assert where(issue) == (4, 36 + MAX_DEPTH - 4, "-")  # at the x: the first [ is at 36
    assert issue.message == f"nested more than {MAX_DEPTH} levels deep"


def test_aliases_may_add_up_to_the_limit(write_plan: WritePlan) -> None:
    items = ", ".join(["x"] * 99)  # 100 values with the sequence itself
    uses = "\n".join(f"  k{n}: *many" for n in range(MAX_ALIAS_NODES // 100))
    text = f"plan: p\nsteps: []\nx-many: &many [{items}]\nextra:\n{uses}\n"
    issues = issues_of(write_plan(text))
    assert "aliases expand" not in " ".join(i.message for i in issues)
    issue = only_issue(write_plan(text + "  one_more: *many\n"))
    assert where(issue) == (5 + MAX_ALIAS_NODES // 100, 13, "-")
    assert issue.message.startswith(f"aliases expand to more than {MAX_ALIAS_NODES} values")


def test_a_reused_anchor_is_legal_and_says_nothing_on_stderr(
    write_plan: WritePlan, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "plan: &n p\nowner: &n team\nservice: *n\nsteps: [{name: s, run: [echo]}]\n"
    assert load_plan(write_plan(text)).plan.service == "team"
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("char", "name"), [("\x00", "control character U+0000"), ("\x1b", "control character U+001B"),
                       ("\x7f", "control character U+007F"), ("\ufffe", "character U+FFFE")]
)  # fmt: skip
def test_characters_yaml_forbids_are_named_and_placed(tmp_path: Path, char: str, name: str) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(f"plan: p\nsteps:\n  - name: a{char}b\n", encoding="utf-8")
    issue = only_issue(path)
    assert where(issue) == (3, 12, "-")
    assert issue.message == f"{name} is not allowed"


def test_a_line_separator_in_a_key_is_escaped_in_the_field(write_plan: WritePlan) -> None:
    issue = only_issue(write_plan('plan: p\nsteps: [{name: s, run: [x]}]\n"a\\u2028b": 1\n'))
    assert issue.field == "a\\u2028b"
    assert len(str(issue).splitlines()) == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (".nan", "a duration must be under 1000000000s (about 30 years)"),
        (".inf", "a duration must be under 1000000000s (about 30 years)"),
        ("1" + "0" * 400, "a duration must be under 1000000000s (about 30 years)"),
        ("9" * 400 + "s", "a duration must be under 1000000000s (about 30 years)"),
        ("-" + "1" * 400, "a duration cannot be negative"),
    ],
)
def test_durations_must_be_finite(write_plan: WritePlan, value: str, message: str) -> None:
    text = f"plan: p\nsteps:\n  - name: s\n    run: [echo]\n    timeout: {value}\n"
    issue = only_issue(write_plan(text))
    assert where(issue) == (5, 5, "steps[0].timeout")
    assert issue.message == message


# --- many errors at once ----------------------------------------------------------------
def test_every_error_is_reported_at_once_sorted_by_line(write_plan: WritePlan) -> None:
    issues = issues_of(
        write_plan(
            """
            plan: p
            verify:
              - name: v
                htp: "http://x"
            steps:
              - name: a
                run: "echo hi"
              - name: b
                rn: [echo]
              - run: {argv: [echo], envv: {}}
                timeout: 10 parsecs
            risk: severe
            roles:
              leed: a
            """
        )
    )
    assert [(i.line, i.field) for i in issues] == [
        (4, "verify[0].htp"),
        (7, "steps[0].run"),
        (9, "steps[1].rn"),
        (10, "steps[2].name"),
        (10, "steps[2].run.envv"),
        (11, "steps[2].timeout"),
        (12, "risk"),
        (14, "roles.leed"),
    ]
    assert [(i.line, i.col) for i in issues] == sorted((i.line, i.col) for i in issues)


def test_load_returns_a_loaded_plan(write_plan: WritePlan) -> None:
    assert isinstance(load_plan(write_plan(DESIGN_EXAMPLE)), LoadedPlan)


def test_error_inside_an_argv_points_at_the_element(write_plan: WritePlan) -> None:
    text = "plan: p\nsteps:\n  - name: a\n    run:\n      argv: [echo, yes, 1.5]\n"
    issue = only_issue(write_plan(text))
    assert where(issue) == (5, 25, "steps[0].run.argv[2]")
    assert issue.message == "Input should be a valid string"


def test_error_inside_a_shorthand_argv_is_on_its_line(write_plan: WritePlan) -> None:
    issue = only_issue(write_plan("plan: p\nsteps:\n  - name: a\n    run: [echo, 1.5]\n"))
    assert (issue.line, issue.field) == (4, "steps[0].run.argv[1]")
