"""Actions against the real thing: processes, process groups, HTTP, symlinks, clocks."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from backout.actions import ACTIONS, Context
from backout.actions.http import HttpAction
from backout.actions.run import RunAction
from backout.actions.shell import ShellAction
from backout.actions.symlink import SymlinkAction
from backout.actions.wait import WaitAction
from backout.errors import ActionError
from backout.proc import TAIL_BYTES
from backout.redact import MASK, Redactor

PY = sys.executable
SECRET = "s3cr3t-t0ken-value"


def ctx(workdir: Path, timeout: float = 10.0, env: dict[str, str] | None = None) -> Context:
    return Context(workdir, timeout, env or {}, Redactor([SECRET]))


def run(workdir: Path, options: Any, timeout: float = 10.0, **kw: Any) -> Any:
    action = RunAction()
    return action.execute(action.Options.model_validate(options), ctx(workdir, timeout, **kw))


def shell(workdir: Path, options: Any, timeout: float = 10.0, **kw: Any) -> Any:
    action = ShellAction()
    return action.execute(action.Options.model_validate(options), ctx(workdir, timeout, **kw))


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def wait_gone(pid: int, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


def test_registry_has_the_built_in_actions() -> None:
    assert {"http", "run", "shell", "symlink", "wait"} <= set(ACTIONS.names())
    assert ACTIONS.names() == sorted(ACTIONS.names())
    assert ACTIONS.get("shell").templated is False
    assert ACTIONS.get("run").templated is True


# --- run --------------------------------------------------------------------------------
def test_run_success_and_output(tmp_path: Path) -> None:
    outcome = run(tmp_path, [PY, "-c", "import sys; print('out'); print('err', file=sys.stderr)"])
    assert outcome.ok
    assert outcome.summary == "exit code 0"
    assert outcome.detail == {"exit_code": 0}
    assert "out" in outcome.output
    assert "err" in outcome.output


@pytest.mark.parametrize(("codes", "ok"), [([0], False), ([0, 3], True), ([3], True)])
def test_run_exit_codes(tmp_path: Path, codes: list[int], ok: bool) -> None:
    outcome = run(tmp_path, {"argv": ["sh", "-c", "exit 3"], "exit_codes": codes})
    assert outcome.ok is ok
    assert outcome.summary == "exit code 3"
    assert outcome.detail == {"exit_code": 3}


def test_run_env_merges_context_and_options(tmp_path: Path) -> None:
    script = "import os; print(os.environ['A'], os.environ['B'], os.environ['PATH'] != '')"
    outcome = run(
        tmp_path,
        {"argv": [PY, "-c", script], "env": {"B": "from-options", "A": "options-win"}},
        env={"A": "from-context", "B": "from-context"},
    )
    assert outcome.ok, outcome
    assert outcome.output.strip() == "options-win from-options True"


def test_run_cwd_is_relative_to_the_plan_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    outcome = run(tmp_path, {"argv": [PY, "-c", "import os; print(os.getcwd())"], "cwd": "sub"})
    assert outcome.output.strip() == str(tmp_path / "sub")
    assert run(tmp_path, ["pwd"]).output.strip() == str(tmp_path)


def test_run_local_program_resolves_against_the_plan_folder(tmp_path: Path) -> None:
    program = tmp_path / "bin" / "restart"
    program.parent.mkdir()
    program.write_text('#!/bin/sh\necho restarted "$1" in "$(pwd)"\n')
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "elsewhere").mkdir()
    outcome = run(tmp_path, {"argv": ["./bin/restart", "app"], "cwd": "elsewhere"})
    assert outcome.ok, outcome
    assert outcome.output.strip() == f"restarted app in {tmp_path / 'elsewhere'}"


def test_run_missing_program_is_an_action_error_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ActionError, match=r"command not found: .*/bin/nope") as caught:
        run(tmp_path, ["./bin/nope"])
    assert "relative to the plan file" in caught.value.hint


def test_run_not_executable(tmp_path: Path) -> None:
    (tmp_path / "script").write_text("#!/bin/sh\n")
    with pytest.raises(ActionError, match="not executable"):
        run(tmp_path, ["./script"])


def test_run_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    script = "sleep 30 & echo $! > grandchild.pid; echo started; wait"
    started = time.monotonic()
    outcome = run(tmp_path, ["sh", "-c", script], timeout=0.5)
    elapsed = time.monotonic() - started
    grandchild = int((tmp_path / "grandchild.pid").read_text())
    assert not outcome.ok
    assert outcome.summary == "timed out after 0.5s"
    assert "started" in outcome.output
    assert elapsed < 20  # the grandchild sleeps 30 s: the timeout did not wait for it
    assert wait_gone(grandchild), f"grandchild {grandchild} survived the timeout"


def test_run_timeout_does_not_wait_for_a_child_that_left_the_group(tmp_path: Path) -> None:
    # setsid puts the sleeper out of reach of the group kill while it holds stdout open;
    # the timeout must still be a timeout
    script = "setsid sh -c 'echo $$ > escaped.pid; exec sleep 30' & echo started; sleep 30"
    started = time.monotonic()
    try:
        outcome = run(tmp_path, ["sh", "-c", script], timeout=0.3)
        elapsed = time.monotonic() - started
        assert not outcome.ok
        assert outcome.summary == "timed out after 0.3s"
        assert "started" in outcome.output
        # the escaped child sleeps 30 s: well under that means nothing waited for it
        assert elapsed < 20, f"run_process waited {elapsed:.1f}s for an escaped child"
    finally:
        pid_file = tmp_path / "escaped.pid"
        deadline = time.monotonic() + 2
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_run_keeps_the_redacted_tail_of_long_output(tmp_path: Path) -> None:
    script = f"print('x' * 20000); print('token={SECRET}')"
    outcome = run(tmp_path, [PY, "-c", script])
    assert outcome.ok
    assert outcome.output.startswith("…")
    assert len(outcome.output) <= TAIL_BYTES + 1
    assert outcome.output.rstrip().endswith(f"token={MASK}")
    assert SECRET not in outcome.output


def test_run_output_is_redacted_on_timeout_too(tmp_path: Path) -> None:
    outcome = run(tmp_path, ["sh", "-c", f"echo {SECRET}; sleep 30"], timeout=0.3)
    assert not outcome.ok
    assert MASK in outcome.output
    assert SECRET not in outcome.output


def test_run_describe() -> None:
    action = RunAction()
    assert action.describe(action.Options.model_validate(["./x", "a b"])) == "run ./x 'a b'"


# --- shell ------------------------------------------------------------------------------
def test_shell_runs_a_script_with_pipes_and_env(tmp_path: Path) -> None:
    outcome = shell(
        tmp_path,
        {"script": 'echo "$GREETING world" | tr a-z A-Z; exit 4', "env": {"GREETING": "hi"}},
        env={"BACKOUT_BASELINE_RELEASE": "v1"},
    )
    assert not outcome.ok
    assert outcome.summary == "exit code 4"
    assert outcome.output.strip() == "HI WORLD"
    env = {"BACKOUT_BASELINE_RELEASE": "v1"}
    ok = shell(tmp_path, 'printf "%s" "$BACKOUT_BASELINE_RELEASE"', env=env)
    assert ok.ok
    assert ok.output == "v1"


def test_shell_cwd_and_other_shell(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    outcome = shell(tmp_path, {"script": "pwd", "cwd": "d", "shell": "/bin/bash"})
    assert outcome.ok
    assert outcome.output.strip() == str(tmp_path / "d")


def test_shell_timeout_kills_background_jobs(tmp_path: Path) -> None:
    outcome = shell(tmp_path, "sleep 30 & echo $! > bg.pid; wait", timeout=0.4)
    assert not outcome.ok
    assert outcome.summary == "timed out after 0.4s"
    assert wait_gone(int((tmp_path / "bg.pid").read_text()))


def test_shell_output_is_redacted(tmp_path: Path) -> None:
    outcome = shell(tmp_path, f"echo {SECRET}")
    assert outcome.output.strip() == MASK


def test_shell_describe() -> None:
    action = ShellAction()
    assert action.describe(action.Options.model_validate("echo hi")) == "shell: echo hi"
    assert action.describe(action.Options.model_validate("a\nb\n")) == "shell: a …"


# --- http -------------------------------------------------------------------------------
def http(options: Any, timeout: float = 5.0, workdir: Path = Path(".")) -> Any:
    action = HttpAction()
    return action.execute(action.Options.model_validate(options), ctx(workdir, timeout))


def test_http_posts_json_by_default(http_server: Any) -> None:
    url = http_server.route("/flags", (201, '{"ok": true}'))
    outcome = http({"url": url, "json": {"checkout_v2": False}, "headers": {"X-Who": "backout"}})
    assert outcome.ok
    assert outcome.summary == "status 201"
    assert outcome.detail == {"status": 201}
    assert outcome.output == '{"ok": true}'
    request = http_server.requests[-1]
    assert request.method == "POST"
    assert json.loads(request.body) == {"checkout_v2": False}
    assert request.headers["X-Who"] == "backout"


def test_http_raw_body_and_method(http_server: Any) -> None:
    url = http_server.route("/deploy", (200, "done"))
    assert http({"url": url, "method": "PUT", "body": "rollback=1"}).ok
    request = http_server.requests[-1]
    assert (request.method, request.body) == ("PUT", b"rollback=1")


@pytest.mark.parametrize(
    ("status", "accepted", "ok"),
    [(500, None, False), (404, None, False), (204, None, True), (409, [200, 409], True)],
)
def test_http_status_list(http_server: Any, status: int, accepted: Any, ok: bool) -> None:
    url = http_server.route("/x", (status, "body"))
    options: dict[str, Any] = {"url": url}
    if accepted:
        options["status"] = accepted
    outcome = http(options)
    assert outcome.ok is ok
    assert outcome.summary == f"status {status}"


def test_http_connection_refused_is_a_failed_outcome(closed_port_url: str) -> None:
    outcome = http({"url": closed_port_url})
    assert not outcome.ok
    assert outcome.summary.startswith(f"POST {closed_port_url}: ConnectError")


def test_http_response_is_redacted(http_server: Any) -> None:
    url = http_server.route("/token", (200, f"your token is {SECRET}"))
    assert http({"url": url}).output == f"your token is {MASK}"


def test_http_error_message_is_redacted(closed_port_url: str) -> None:
    url = closed_port_url + f"?token={SECRET}"
    outcome = http({"url": url})
    assert not outcome.ok
    assert SECRET not in outcome.summary


# --- symlink ----------------------------------------------------------------------------
@pytest.fixture
def releases(tmp_path: Path) -> Path:
    for name in ("v1", "v2"):
        (tmp_path / "releases" / name).mkdir(parents=True)
    os.symlink("v2", tmp_path / "releases" / "current")
    return tmp_path


def symlink(workdir: Path, **options: Any) -> Any:
    action = SymlinkAction()
    return action.execute(action.Options.model_validate(options), ctx(workdir))


def test_symlink_switch_records_the_previous_target(releases: Path) -> None:
    outcome = symlink(releases, link="releases/current", target="v1")
    assert outcome.ok
    assert os.readlink(releases / "releases" / "current") == "v1"
    assert outcome.detail == {"previous": "v2", "target": "v1"}
    assert outcome.summary == "releases/current -> v1 (was v2)"
    assert sorted(p.name for p in (releases / "releases").iterdir()) == ["current", "v1", "v2"]


def test_symlink_creates_a_missing_link(releases: Path) -> None:
    outcome = symlink(releases, link="releases/live", target="v1")
    assert outcome.ok
    assert outcome.detail["previous"] is None
    assert (releases / "releases" / "live").resolve() == (releases / "releases" / "v1").resolve()


# reads the link in a tight loop in another process (no GIL to hide a gap) until told to stop
LINK_READER = """
import json, os, sys
link, stop, progress = sys.argv[1], sys.argv[2], sys.argv[3]
seen, misses, reads = set(), 0, 0
print("ready", flush=True)
while not os.path.exists(stop):
    reads += 1
    try:
        target = os.readlink(link)
    except OSError:
        misses += 1
        continue
    if target not in seen:
        seen.add(target)
        with open(progress, "a") as told:
            told.write(target + "\\n")
print(json.dumps({"seen": sorted(seen), "misses": misses, "reads": reads}))
"""


def test_symlink_switch_is_atomic_for_readers(releases: Path) -> None:
    """Another process reading the link while it is switched back and forth never finds it
    missing. The switching goes on (at least 300 times) until the reader has seen both
    targets: on a busy machine it may get few turns."""
    link, stop = releases / "releases" / "current", releases / "stop"
    progress = releases / "seen"
    reader = subprocess.Popen(
        [PY, "-c", LINK_READER, str(link), str(stop), str(progress)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout is not None
    assert reader.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 60
    switches = 0
    try:
        while switches < 300 or not (progress.exists() and len(progress.read_text().split()) == 2):
            assert time.monotonic() < deadline, "the reader never saw both targets"
            target = ("v1", "v2")[switches % 2]
            assert symlink(releases, link="releases/current", target=target).ok
            switches += 1
    finally:
        stop.touch()
        report = json.loads(reader.communicate(timeout=30)[0])
    assert report["misses"] == 0, f"readers saw no link {report['misses']} times"
    assert report["seen"] == ["v1", "v2"]
    assert report["reads"] > 300


def test_symlink_refuses_a_missing_target(releases: Path) -> None:
    outcome = symlink(releases, link="releases/current", target="v9")
    assert not outcome.ok
    assert outcome.summary == "target v9 does not exist"
    assert os.readlink(releases / "releases" / "current") == "v2"


def test_symlink_may_point_at_a_missing_target_when_told(releases: Path) -> None:
    assert symlink(releases, link="releases/current", target="v9", must_exist=False).ok
    assert os.readlink(releases / "releases" / "current") == "v9"


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_symlink_refuses_to_replace_a_non_symlink(releases: Path, kind: str) -> None:
    path = releases / "releases" / "real"
    if kind == "file":
        path.write_text("precious")
    else:
        path.mkdir()
    outcome = symlink(releases, link="releases/real", target="v1")
    assert not outcome.ok
    assert outcome.summary == "releases/real exists and is not a symlink"
    assert not path.is_symlink()
    assert kind == "dir" or path.read_text() == "precious"
    assert not any(p.name.endswith(".tmp") for p in path.parent.iterdir())


def test_symlink_describe() -> None:
    action = SymlinkAction()
    options = action.Options.model_validate({"link": "current", "target": "v1"})
    assert action.describe(options) == "point current at v1"


# --- wait -------------------------------------------------------------------------------
def wait(workdir: Path, options: Any, timeout: float = 5.0) -> Any:
    action = WaitAction()
    return action.execute(action.Options.model_validate(options), ctx(workdir, timeout))


def test_wait_delay(tmp_path: Path) -> None:
    started = time.monotonic()
    outcome = wait(tmp_path, "200ms")
    assert outcome.ok
    assert outcome.summary == "waited 0.2s"
    assert time.monotonic() - started >= 0.2


def test_wait_delay_longer_than_the_timeout_fails_at_once(tmp_path: Path) -> None:
    started = time.monotonic()
    outcome = wait(tmp_path, "30s", timeout=1)
    assert not outcome.ok
    assert outcome.summary == "delay 30s exceeds timeout 1s"
    assert time.monotonic() - started < 0.5


def test_wait_until_http_passes(tmp_path: Path, http_server: Any) -> None:
    url = http_server.route("/health", (503, "starting"), (503, "starting"), 200)
    outcome = wait(tmp_path, {"http": {"url": url}, "interval": "50ms"})
    assert outcome.ok, outcome
    assert outcome.summary == "passed after 3 poll(s): status 200"
    assert len(http_server.requests) == 3


def test_wait_until_command_passes(tmp_path: Path) -> None:
    counter = "n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; [ $n -ge 3 ]"
    outcome = wait(tmp_path, {"command": {"argv": ["sh", "-c", counter]}, "interval": "50ms"})
    assert outcome.ok, outcome
    assert outcome.summary == "passed after 3 poll(s): exit code 0"


def test_wait_gives_up_at_its_timeout(tmp_path: Path) -> None:
    started = time.monotonic()
    outcome = wait(tmp_path, {"command": {"argv": ["false"]}, "interval": "100ms"}, timeout=0.5)
    elapsed = time.monotonic() - started
    assert not outcome.ok
    assert outcome.summary.startswith("still failing after ")
    assert "exit code 1, expected 0" in outcome.summary
    assert elapsed > 0.3  # it polled until its timeout (a busy machine may take longer)


def test_wait_for_a_server_that_never_comes(tmp_path: Path, closed_port_url: str) -> None:
    outcome = wait(tmp_path, {"http": {"url": closed_port_url}, "interval": "100ms"}, timeout=0.4)
    assert not outcome.ok
    assert "ConnectError" in outcome.summary


def test_wait_describe() -> None:
    action = WaitAction()
    assert action.describe(action.Options.model_validate("1.5s")) == "wait 1.5s"
    http_wait = action.Options.model_validate({"http": {"url": "http://x/h"}})
    assert action.describe(http_wait) == "wait until GET http://x/h returns 200"
    command_wait = action.Options.model_validate({"command": {"argv": ["./ready"]}})
    assert action.describe(command_wait) == "wait until `./ready` exits 0"
