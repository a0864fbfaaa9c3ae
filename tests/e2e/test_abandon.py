"""`backout abandon RUN --reason`: a run stuck in needs_attention (made for real: the
executor is killed after a non-idempotent step's action, and resumed) is given up; it ends
failed, journalled and audited, its service is free again and no worker resumes it. On
SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from backout.cli import cli
from backout.kernel.events import Event, EventKind
from backout.notify.escalation import waiting
from tests.integration.change_helpers import create_change, show

pytestmark = pytest.mark.slow

PLAN = """plan: ledger
steps:
  - name: migrate the ledger
    run: [sh, -c, 'echo once >> effects']
  - name: restart
    run: ['true']
"""


def invoke(url: str, *args: str, actor: str = "dana") -> Result:
    return CliRunner().invoke(cli, ["--db", url, "--actor", actor, *args], obj={})


def stuck_run(url: str, folder: Path, *run_args: str) -> str:
    """A run that needs attention: killed right after step 1's action, then resumed."""
    plan = folder / "plan.yaml"
    plan.write_text(PLAN)
    killed = subprocess.run(
        [sys.executable, "-m", "backout", "--db", url, "run", str(plan), *run_args],
        env={**os.environ, "BACKOUT_FAILPOINTS": "action_done:1"},
        capture_output=True,
        cwd=folder,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr
    run_id = str(json.loads(invoke(url, "runs", "--json").stdout)[0]["run_id"])
    resumed = invoke(url, "resume", run_id)
    assert resumed.exit_code == 3, resumed.output
    return run_id


def test_abandon_frees_the_service_journalled_and_audited(store_url: str, tmp_path: Path) -> None:
    run_id = stuck_run(store_url, tmp_path)
    plan = str(tmp_path / "plan.yaml")
    blocked = invoke(store_url, "run", plan)
    assert blocked.exit_code == 2
    assert f"backout abandon {run_id}" in blocked.output  # the way out is named

    done = invoke(store_url, "abandon", run_id[:6], "--reason", "ledger checked by hand")
    assert done.exit_code == 0, done.output
    assert f"run {run_id} abandoned: failed" in done.output

    status = invoke(store_url, "status", run_id, "--json")
    assert status.exit_code == 1
    report = json.loads(status.stdout)
    assert (report["status"], report["result"]) == ("failed", "abandoned")
    assert report["message"] == "abandoned by dana: ledger checked by hand"
    last = json.loads(invoke(store_url, "journal", run_id, "--json").stdout)[-1]
    assert last["kind"] == "run_abandoned"
    assert last["data"]["by"] == "dana"
    assert last["data"]["reason"] == "ledger checked by hand"
    audited = json.loads(
        invoke(store_url, "audit", "log", "--action", "run.abandoned", "--json").stdout
    )
    assert [(a["actor"], a["subject"]) for a in audited] == [("dana", f"run:{run_id}")]
    assert audited[0]["details"]["reason"] == "ledger checked by hand"
    assert invoke(store_url, "audit", "verify").exit_code == 0
    assert "abandoned by dana" in invoke(store_url, "explain", run_id).output

    assert json.loads(invoke(store_url, "worker", "--once", "--json").stdout) == []
    again = invoke(store_url, "run", plan, "--json")
    assert again.exit_code == 0, again.output  # the service is free for a new run
    assert (tmp_path / "effects").read_text().split() == ["once", "once"]  # only the new run


def test_abandon_is_refused_without_a_reason_or_for_another_state(
    store_url: str, tmp_path: Path
) -> None:
    run_id = stuck_run(store_url, tmp_path)
    for args in ([], ["--reason", "  "]):
        refused = invoke(store_url, "abandon", run_id, *args)
        assert refused.exit_code == 2
        assert "abandoning a run needs a reason" in refused.output
        assert "--reason" in refused.output
    assert json.loads(invoke(store_url, "status", run_id, "--json").stdout)["status"] == (
        "needs_attention"
    )
    finished = invoke(store_url, "resume", run_id, "--mark-done", "1")
    assert finished.exit_code == 0, finished.output
    late = invoke(store_url, "abandon", run_id, "--reason", "too late")
    assert late.exit_code == 2
    assert f"run {run_id} is succeeded, not needs_attention" in late.output
    assert "Traceback" not in late.output
    assert invoke(store_url, "abandon", "nosuchrun", "--reason", "x").exit_code == 2


def test_an_abandoned_backout_fails_its_change(store_url: str, tmp_path: Path) -> None:
    (tmp_path / "plan.yaml").write_text(PLAN)
    change_id = create_change(store_url, str(tmp_path / "plan.yaml"), "--risk", "low")
    assert invoke(store_url, "change", "approve", str(change_id), actor="bob").exit_code == 0
    run_id = stuck_run(store_url, tmp_path, "--change", str(change_id))
    assert show(store_url, change_id)["status"] == "in_progress"
    assert invoke(store_url, "abandon", run_id, "--reason", "superseded").exit_code == 0
    assert show(store_url, change_id)["status"] == "failed"


def test_an_abandoned_run_is_no_longer_chased() -> None:
    """Escalation stops: nobody is paged about a run a person has given up on."""
    stuck = [
        Event("r", 1, 1.0, EventKind.RUN_STARTED),
        Event("r", 2, 2.0, EventKind.RUN_NEEDS_ATTENTION),
    ]
    assert waiting(stuck) is not None
    assert waiting([*stuck, Event("r", 3, 3.0, EventKind.RUN_ABANDONED)]) is None
