"""``backout journal RUN --server URL``: the journal read from a server's API, not the store;
with ``--follow``, streamed live from its Server-Sent Events until the run is over.

The server is the app over real HTTP (test_server.py's ``serve``), on SQLite and
PostgreSQL. The follower is a real ``backout`` process that has no store at all: what it
prints can only have come through the server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from backout import commands
from backout.cli import cli
from backout.render import journal_json
from tests.integration import test_server
from tests.integration.test_server import real_run
from tests.services import wait_until

DEADLINE_S = 60.0
BACKOUT = (sys.executable, "-m", "backout")
serve = test_server.serve  # the fixture: the API on a free loopback port, in a thread

SLOW_PLAN = """plan: shop
steps:
  - name: wait for the go
    run: ["sh", "-c", "while [ ! -e {go} ]; do sleep 0.05; done"]
  - name: switch back
    run: ["true"]
"""


def journal(url: str, token: str | None, *args: str) -> Any:
    env = {"BACKOUT_TOKEN": token} if token else {}
    return CliRunner().invoke(cli, ["journal", *args, "--server", url], env=env, obj={})


def test_the_journal_read_through_a_server_is_the_stores(serve: Any, tmp_path: Path) -> None:
    api = serve()
    run_id = real_run(api, tmp_path)
    result = journal(api.url, api.token("viewer"), run_id, "--json")
    assert result.exit_code == 0, result.output
    expected = [journal_json(event) for event in commands.journal(api.caller, run_id)]
    assert json.loads(result.output) == json.loads(json.dumps(expected))

    text = journal(api.url, api.token("viewer"), run_id)
    assert text.exit_code == 0, text.output
    assert "run_created" in text.output
    assert "step_finished step 1" in text.output


def test_refusals_are_errors_with_the_tree_s_exit_codes(serve: Any, tmp_path: Path) -> None:
    api = serve()
    run_id = real_run(api, tmp_path)
    no_token = journal(api.url, None, run_id)
    assert no_token.exit_code == 2
    assert "BACKOUT_TOKEN" in no_token.output

    bad_token = journal(api.url, "bo_not-a-token", run_id)
    assert bad_token.exit_code == 2
    assert "refused the token" in bad_token.output

    unknown = journal(api.url, api.token("viewer"), "nosuchrun")
    assert unknown.exit_code == 2
    assert "nosuchrun" in unknown.output

    not_a_url = journal("ftp://somewhere", api.token("viewer"), run_id)
    assert not_a_url.exit_code == 2
    assert "not a server's address" in not_a_url.output

    gone = journal("http://127.0.0.1:9", api.token("viewer"), run_id)
    assert gone.exit_code == 1
    assert "cannot reach the server at http://127.0.0.1:9" in gone.output
    for result in (no_token, bad_token, unknown, not_a_url, gone):
        assert "Traceback" not in result.output


def test_follow_streams_a_live_run_from_a_server_until_it_ends(serve: Any, tmp_path: Path) -> None:
    api = serve()
    go = tmp_path / "go"
    plan = tmp_path / "slow.yaml"
    plan.write_text(SLOW_PLAN.replace("{go}", str(go)))
    runner = subprocess.Popen(
        [*BACKOUT, "--db", api.store.url, "run", plan.as_posix()],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(lambda: _first_run(api) is not None, DEADLINE_S, "the run to be created")
        run_id = _first_run(api)
        assert run_id is not None
        # the follower has no store: BACKOUT_DATABASE_URL names one that cannot exist
        env = {
            **os.environ,
            "BACKOUT_TOKEN": api.token("viewer"),
            "BACKOUT_DATABASE_URL": f"sqlite:///{tmp_path / 'none' / 'absent.db'}",
        }
        printed = tmp_path / "followed.jsonl"
        with printed.open("w") as sink:
            follower = subprocess.Popen(
                [*BACKOUT, "journal", run_id, "--follow", "--json", "--server", api.url],
                stdout=sink,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                start_new_session=True,
            )
        try:
            wait_until(
                lambda: follower.poll() is not None or _streamed(printed, "step_process", 1),
                DEADLINE_S,
                "step 1 to be streamed",
            )
            assert follower.poll() is None  # still following: the run waits on the go
            go.touch()
            _, err = follower.communicate(timeout=DEADLINE_S)
            assert follower.returncode == 0, err
        finally:
            if follower.poll() is None:
                os.killpg(follower.pid, 9)
                follower.wait()
        seen = [json.loads(line) for line in printed.read_text().splitlines()]
        assert runner.wait(DEADLINE_S) == 0
        expected = [journal_json(event) for event in commands.journal(api.caller, run_id)]
        assert seen == json.loads(json.dumps(expected))  # every event once, in order
        assert seen[-1]["kind"] == "run_finished"
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, 9)
            runner.wait()


def _streamed(printed: Path, kind: str, step: int) -> bool:
    lines = printed.read_text().splitlines()
    return any(
        json.loads(line)["kind"] == kind and json.loads(line)["step"] == step for line in lines
    )


def _first_run(api: Any) -> str | None:
    runs = commands.runs(api.caller)
    return runs[0].run_id if runs else None
