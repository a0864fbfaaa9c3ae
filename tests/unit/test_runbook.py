"""`backout show`: the plan as a Markdown runbook a change record or an auditor can read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from backout.plans import load_plan
from backout.spec.runbook import render_runbook

WritePlan = Callable[..., Path]

PLAN = """\
plan: checkout
service: checkout-api
owner: payments-team
risk: high
rto: 2m
roles:
  lead: alice@example.com
  approvers: [bob@example.com, carol@example.com]
baseline:
  release: {readlink: releases/current}
  config: {file_hash: etc/checkout.conf}
steps:
  - name: point current at the previous release
    symlink: {link: releases/current, target: "{{ baseline.release }}"}
    timeout: 10s
  - name: restart the service
    run: [./bin/restart, checkout]
    timeout: 30s
    retries: 1
    idempotent: true
  - name: purge the cache
    http: {url: "http://127.0.0.1:9000/purge", method: DELETE}
    timeout: 500ms
    retries: 3
    on_failure: continue
  - name: settle
    wait: 2s
verify:
  - name: healthy
    http: {url: "http://127.0.0.1:8080/health", status: 200, contains: ok}
    within: 30s
  - name: config is the baseline's
    file_hash: {path: etc/checkout.conf, equals: "{{ baseline.config }}"}
  - name: status command
    command: [./bin/status]
"""


def render(write_plan: WritePlan, text: str) -> list[str]:
    return render_runbook(load_plan(write_plan(text))).splitlines()


def test_header_and_objective(write_plan: WritePlan) -> None:
    loaded = load_plan(write_plan(PLAN))
    lines = render_runbook(loaded).splitlines()
    assert lines[0] == "# Backout runbook: checkout"
    assert "| Service | `checkout-api` |" in lines
    assert "| Owner | payments-team |" in lines
    assert "| Risk | high |" in lines
    assert "| Recovery time objective | 2m |" in lines
    assert f"| Plan file | `plan.yaml` (version `{loaded.version}`) |" in lines
    assert (
        "Return `checkout-api` to its last known good state within 2m, "
        "and prove it with the checks below." in lines
    )


def test_roles(write_plan: WritePlan) -> None:
    lines = render(write_plan, PLAN)
    assert "- **Lead:** alice@example.com" in lines
    assert "- **Approvers:** bob@example.com, carol@example.com" in lines


def test_baseline_says_how_each_value_is_read(write_plan: WritePlan) -> None:
    lines = render(write_plan, PLAN)
    assert "| `release` | target of symlink releases/current |" in lines
    assert "| `config` | sha256 of etc/checkout.conf |" in lines


def test_steps_in_order_with_timeouts_retries_and_failure_policy(write_plan: WritePlan) -> None:
    lines = render(write_plan, PLAN)
    steps = lines[lines.index("## Steps") + 2 : lines.index('## What "restored" means') - 1]
    assert steps == [
        "1. **point current at the previous release** — `point releases/current at "
        "{{ baseline.release }}` (timeout 10s, not idempotent, on failure: stop)",
        "2. **restart the service** — `run ./bin/restart checkout` "
        "(timeout 30s, 1 retry, idempotent, on failure: stop)",
        "3. **purge the cache** — `DELETE http://127.0.0.1:9000/purge` "
        "(timeout 500ms, 3 retries, not idempotent, on failure: continue)",
        "4. **settle** — `wait 2s` (timeout 1m, not idempotent, on failure: stop)",
    ]


def test_what_restored_means(write_plan: WritePlan) -> None:
    lines = render(write_plan, PLAN)
    checks = lines[lines.index('## What "restored" means') + 2 :]
    assert checks[:3] == [
        "- [ ] **healthy** — GET http://127.0.0.1:8080/health returns 200 and contains 'ok' "
        "(retried for up to 30s)",
        "- [ ] **config is the baseline's** — etc/checkout.conf has sha256 {{ baseline.config }}",
        "- [ ] **status command** — './bin/status' exits 0",
    ]
    assert "Run `backout resume RUN_ID`." in "\n".join(checks)


def test_a_bare_plan_says_what_is_missing(write_plan: WritePlan) -> None:
    lines = render(write_plan, "plan: tiny\nsteps:\n  - {name: go, shell: echo hi}\n")
    assert "| Owner | not set |" in lines
    assert "| Recovery time objective | not set |" in lines
    assert "- **Lead:** not named" in lines
    assert "- **Approvers:** none named" in lines
    assert "- No verification checks: nothing proves the backout worked." in lines
    assert not any(line.startswith("## Baseline") for line in lines)
    assert "Return `tiny` to its last known good state, and prove it with the checks below." in (
        lines
    )
    assert "1. **go** — `shell: echo hi` (timeout 1m, not idempotent, on failure: stop)" in lines


def test_runbook_shows_stages_undo_and_triggers(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "plan: p\n"
        "telemetry:\n  errors: {command: [cat, e.txt]}\n"
        "triggers:\n  - name: too many errors\n    signal: errors\n"
        "    threshold: {above: 5, for: 10s}\n"
        "deploy:\n  strategy: canary\n  stages:\n"
        "    - name: canary 5%\n      steps:\n        - name: shift\n"
        "          run: [./shift, '5']\n          undo: {run: [./shift, '0']}\n"
        "      hold: 2m\n      approve: true\n"
        "steps:\n  - name: everything back\n    run: [./shift, '0']\n"
    )
    text = render_runbook(load_plan(plan))
    assert "## Deploy (canary), stage by stage" in text
    assert "1. **canary 5%** — checkpoint: hold 2m, then wait for `backout approve`" in text
    assert "   - shift — `run ./shift 5`; undo: `run ./shift 0`" in text
    assert (
        "- **too many errors** — threshold on `errors` (above: 5, for: 10s); no data: pause" in text
    )
    assert "## Backout steps (after the stages are undone)" in text
