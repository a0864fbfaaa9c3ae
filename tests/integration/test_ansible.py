"""The ``ansible`` action running real playbooks (ansible-core from the test extra) against
localhost with ``connection: local``: per-host results, failed hosts and tasks named,
extra vars kept off the command line, secrets redacted in the journal."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from backout.actions.ansible import AnsibleAction
from backout.cli import cli
from backout.kernel.options import Context
from backout.redact import MASK, Redactor
from tests.conftest import missing_service

SECRET = "ansible-s3cret-release"
PLAYBOOK = """- hosts: all
  gather_facts: false
  tasks:
    - name: write the release marker
      ansible.builtin.copy:
        content: "{{ release }}\\n"
        dest: "{{ marker_dir }}/{{ inventory_hostname }}.release"
    - name: refuse the bad release
      ansible.builtin.fail:
        msg: "release {{ release }} is not allowed here"
      when: release == bad_release | default('')
      tags: [guard]
"""


@pytest.fixture
def playbook_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    program = Path(sys.executable).with_name("ansible-playbook")
    if not program.exists() and shutil.which("ansible-playbook") is None:
        missing_service("ansible-playbook not found: pip install ansible-core (the test extra)")
    monkeypatch.setenv("PATH", f"{program.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("ANSIBLE_LOCAL_TEMP", str(tmp_path / "ansible-tmp"))
    (tmp_path / "site.yaml").write_text(PLAYBOOK, encoding="utf-8")
    # two names for this machine, both local: per-host results for more than one host
    (tmp_path / "hosts.ini").write_text(
        "".join(
            f"{name} ansible_connection=local ansible_python_interpreter={sys.executable}\n"
            for name in ("web1", "web2")
        ),
        encoding="utf-8",
    )
    (tmp_path / "markers").mkdir()
    return tmp_path


def run(folder: Path, **options: Any) -> Any:
    action = AnsibleAction()
    parsed = action.Options.model_validate(
        {"playbook": "site.yaml", "inventory": ["hosts.ini"], **options}
    )
    return action.execute(parsed, Context(folder, 120.0, {}, Redactor([SECRET])))


def test_a_passing_playbook_records_every_host(playbook_dir: Path) -> None:
    outcome = run(
        playbook_dir, extra_vars={"release": "v1", "marker_dir": str(playbook_dir / "markers")}
    )
    assert outcome.ok, outcome
    assert outcome.summary == "2 host(s) ok, 2 changed"
    assert outcome.detail["hosts"]["web1"] == {
        "ok": 1,
        "changed": 1,
        "failed": 0,
        "unreachable": 0,
        "skipped": 1,
        "rescued": 0,
        "ignored": 0,
    }
    assert set(outcome.detail["hosts"]) == {"web1", "web2"}
    assert (playbook_dir / "markers" / "web2.release").read_text() == "v1\n"
    assert "PLAY RECAP" in outcome.output


def test_a_failing_task_names_the_host_and_the_task(playbook_dir: Path) -> None:
    outcome = run(
        playbook_dir,
        limit="web2",
        extra_vars={
            "release": SECRET,
            "bad_release": SECRET,
            "marker_dir": str(playbook_dir / "markers"),
        },
    )
    assert not outcome.ok
    assert outcome.summary == (
        f"1 of 1 host(s) failed: web2 failed at task 'refuse the bad release': "
        f"release {MASK} is not allowed here"
    )
    assert outcome.detail["failed_hosts"] == ["web2"]
    assert outcome.detail["failures"][0]["task"] == "refuse the bad release"
    assert outcome.detail["exit_code"] == 2
    assert SECRET not in outcome.output
    assert "@" in outcome.output
    assert SECRET not in outcome.output.splitlines()[0]
    assert not (playbook_dir / "markers" / "web1.release").exists()  # --limit held


def test_check_mode_and_tags_change_nothing(playbook_dir: Path) -> None:
    outcome = run(
        playbook_dir,
        check=True,
        extra_vars={"release": "v2", "marker_dir": str(playbook_dir / "markers")},
    )
    assert outcome.ok, outcome
    assert outcome.summary.endswith("(check mode: nothing changed)")
    assert outcome.detail["check"] is True
    assert list((playbook_dir / "markers").iterdir()) == []

    tagged = run(playbook_dir, tags=["guard"], extra_vars={"release": "v2", "marker_dir": "x"})
    assert tagged.ok
    assert tagged.detail["hosts"]["web1"]["changed"] == 0


def test_a_playbook_that_does_not_parse_fails_with_ansibles_words(playbook_dir: Path) -> None:
    (playbook_dir / "site.yaml").write_text("- hosts: all\n  tasks: [oops\n")
    outcome = run(playbook_dir)
    assert not outcome.ok
    assert outcome.summary.startswith("ansible-playbook gave no results:")


def test_an_ansible_step_through_the_engine_redacts_the_journal(
    playbook_dir: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_RELEASE_TOKEN", SECRET)
    plan = playbook_dir / "plan.yaml"
    plan.write_text(
        f"""plan: shop-config
secrets:
  token: {{env: SHOP_RELEASE_TOKEN}}
steps:
  - name: put the previous release back
    ansible:
      playbook: site.yaml
      inventory: [hosts.ini]
      extra_vars:
        release: "{{{{ secrets.token }}}}"
        bad_release: "{{{{ secrets.token }}}}"
        marker_dir: {playbook_dir / "markers"}
    timeout: 120s
""",
        encoding="utf-8",
    )
    runner = CliRunner()
    result = runner.invoke(cli, ["--db", store_url, "run", str(plan), "--json"], obj={})
    assert result.exit_code != 0
    report = json.loads(result.stdout)
    journal = runner.invoke(cli, ["--db", store_url, "journal", report["run_id"], "--json"], obj={})
    assert SECRET not in journal.output
    finished = next(e for e in json.loads(journal.stdout) if e["kind"] == "step_finished")
    assert finished["data"]["failed_hosts"] == ["web1", "web2"]
    assert finished["data"]["failures"][0]["message"] == f"release {MASK} is not allowed here"
    assert "web1 failed at task 'refuse the bad release'" in finished["data"]["summary"]
