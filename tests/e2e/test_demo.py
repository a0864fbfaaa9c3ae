"""`backout demo` end to end: a real service, real traffic, the real trigger system and the
real engine, no mocks.

Each demo runs with TMPDIR set to a folder of the test's own, so every process the demo
starts names that folder on its command line; that is how the tests find survivors.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from backout.plans import load_plan
from tests.e2e import procs

pytestmark = pytest.mark.slow

DEMO = [sys.executable, "-m", "backout", "demo"]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"
PLAN = load_plan(EXAMPLE).plan
SEQUENTIAL = next(t.name for t in PLAN.triggers if t.kind == "sequential")
STAGE = "rollout"
STEPS = [  # a deploy that backs out: the stage, its reverses newest first, the plan's steps
    ("deploy", f"{STAGE}: point current at the new release"),
    ("deploy", f"{STAGE}: restart the service on it"),
    ("undo", f"undo {STAGE}: restart the service on it"),
    ("undo", f"undo {STAGE}: point current at the new release"),
    ("backout", "point current at the last good release"),
    ("backout", "restart the service"),
    ("backout", "wait until the service answers"),
]


def demo_env(tmp: Path) -> dict[str, str]:
    env = {**os.environ, "TMPDIR": str(tmp)}
    for name in ("BACKOUT_DEMO_PORT", "BACKOUT_DATABASE_URL"):
        env.pop(name, None)
    return env


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie may linger where nothing reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def processes_naming(folder: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if str(folder).encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return [pid for pid in found if running(pid)]


def gone_within(folder: Path, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := processes_naming(folder)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    tmp = tmp_path_factory.mktemp("demo")
    done = subprocess.run(
        [*DEMO, "--json"], capture_output=True, text=True, env=demo_env(tmp), timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # stdout holds the JSON document and nothing else
    return result, tmp


def test_the_bad_release_is_detected_backed_out_and_verified(
    demo: tuple[dict[str, Any], Path],
) -> None:
    result, _ = demo
    assert result["outcome"] == "succeeded"
    assert result["result"] == "backed_out"
    assert result["verified"] is True
    assert result["run_id"]
    assert result["release"] == "v2"
    # what people were told: the demo's inbox verified every signature
    told = [m["event"] for m in result["notifications"]]
    assert told == ["run.started", "trigger.fired", "run.backed_out"]
    assert result["notifications_refused"] == 0
    # how fast is measured in bench/demo_restore.py, not asserted here (the suite runs on
    # a loaded machine too)
    assert 0 < result["detected_after_s"] < result["restored_after_s"]
    assert result["error_rate_after"] == 0


def test_the_plans_sequential_trigger_fired_on_real_evidence(
    demo: tuple[dict[str, Any], Path],
) -> None:
    result, _ = demo
    trigger = result["trigger"]
    assert result["triggers"] == [t.name for t in PLAN.triggers]
    assert (trigger["name"], trigger["kind"]) == (SEQUENTIAL, "sequential")
    evidence = trigger["evidence"]
    assert evidence["observed_rate"] > evidence["p_null"]  # v2's errors, above the limit
    assert trigger["statistic"] >= trigger["threshold"]  # the odds passed the bar
    assert f"{evidence['events']} of {evidence['trials']}" in trigger["summary"]


def test_every_step_succeeded_in_journal_order(demo: tuple[dict[str, Any], Path]) -> None:
    result, _ = demo
    assert [(s["phase"], s["name"]) for s in result["steps"]] == STEPS
    assert all(s["outcome"] == "succeeded" for s in result["steps"])
    assert all(s["duration_s"] >= 0 for s in result["steps"])
    assert [c["passed"] for c in result["checks"]] == [True, True]


def test_the_timeline_tells_the_story_in_order(demo: tuple[dict[str, Any], Path]) -> None:
    result, _ = demo
    events = [e["event"] for e in result["timeline"]]
    times = [e["t_s"] for e in result["timeline"]]
    assert times == sorted(times)

    def first(prefix: str) -> int:
        return next(i for i, text in enumerate(events) if text.startswith(prefix))

    order = ["baseline recorded", "deploying v2", "run ", "step 1 started", "step 2 succeeded"]
    order += ["fault:", "checkpoint", "detected:", "backing out", "step 3 started"]
    order += ["step 7 succeeded", "verify 2 passed", "run succeeded", "restored:"]
    assert [first(p) for p in order] == sorted(first(p) for p in order)
    assert events[first("detected:")].startswith(f"detected: {SEQUENTIAL!r} (sequential) fired")
    fault = times[first("fault:")]
    assert times[first("step 2 succeeded")] == fault  # the journal's time of the restart
    detected, restored = times[first("detected:")], times[first("restored:")]
    assert detected - fault == pytest.approx(result["detected_after_s"], abs=0.01)
    assert restored - fault == pytest.approx(result["restored_after_s"], abs=0.01)


def test_the_baseline_is_the_good_release(demo: tuple[dict[str, Any], Path]) -> None:
    result, _ = demo
    assert result["baseline"]["release"] == "v1"
    assert len(result["baseline"]["config"]) == 64
    errors = result["baseline_telemetry"]["errors"]
    assert errors["status"] == "ok"
    assert errors["events"] == 0
    assert errors["trials"] >= 20  # two seconds of v1 taking traffic


def test_no_demo_process_survives_and_the_folder_is_gone(
    demo: tuple[dict[str, Any], Path],
) -> None:
    result, tmp = demo
    assert len(result["service_pids"]) == 3  # v1, v2 (the deploy), v1 again (the backout)
    assert not [pid for pid in result["service_pids"] if running(pid)]
    assert processes_naming(tmp) == []
    assert list(tmp.iterdir()) == []
    assert "workdir" not in result


@pytest.mark.parametrize(
    ("sig", "when", "exit_code"),
    [
        (signal.SIGINT, "traffic started", 130),
        (signal.SIGINT, "step 2 started", 130),  # the deploy's bin/restart is running
        (signal.SIGTERM, "fault:", 128 + signal.SIGTERM),  # the triggers are watching
        (signal.SIGTERM, "backing out", 128 + signal.SIGTERM),
    ],
)
def test_an_interrupted_demo_stops_everything(
    tmp_path: Path, sig: signal.Signals, when: str, exit_code: int
) -> None:
    proc = subprocess.Popen(
        DEMO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=demo_env(tmp_path),
        preexec_fn=procs.default_sigint,
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if when in line:
            break
    assert processes_naming(tmp_path), "".join(seen)
    proc.send_signal(sig)
    _, rest = proc.communicate(timeout=30)
    assert proc.returncode == exit_code, "".join(seen) + rest
    assert processes_naming(tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_a_killed_demo_leaves_no_service_behind(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        DEMO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=demo_env(tmp_path)
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "fault:" in line:
            break
    proc.kill()  # no cleanup code runs: the service notices its owner is gone
    proc.wait(timeout=10)
    assert gone_within(tmp_path, 5.0) == []


def test_a_kept_demo_explains_why_it_backed_out_and_rehearses(tmp_path: Path) -> None:
    """`--keep` leaves the folder and store to look at; `--rehearse` adds the drill beat:
    the same plan rehearsed, its evidence recorded, the gate's rehearsal check passing."""
    done = subprocess.run(
        [*DEMO, "--json", "--keep", "--rehearse"],
        capture_output=True,
        text=True,
        env=demo_env(tmp_path),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    workdir = Path(result["workdir"])
    try:
        assert processes_naming(tmp_path) == []  # kept means the folder, not the processes
        assert (workdir / "releases" / "current").readlink() == Path("v1")
        page = Path(result["status_page"])
        summary = json.loads((page / "status.json").read_text())
        assert [c["name"] for c in summary["components"]] == ["Demo shop"]
        assert [i["status"] for i in summary["incidents"]] == ["monitoring"]
        assert "Demo shop" in (page / "index.html").read_text()
        explain = ["explain", result["run_id"], "--json"]
        explained = subprocess.run(
            [sys.executable, "-m", "backout", "--db", result["database_url"], *explain],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert explained.returncode == 0, explained.stderr
        run = json.loads(explained.stdout)["run"]
        assert (run["status"], run["result"], run["verified"]) == ("succeeded", "backed_out", True)
        assert run["trigger"]["trigger"] == SEQUENTIAL
        assert run["trigger"]["trigger_kind"] == "sequential"
        assert [s["name"] for s in run["steps"]] == [name for _, name in STEPS]
        drill = result["rehearsal"]
        assert drill["passed"] is True
        assert drill["gate"].startswith("pass: rehearsed ")
        assert drill["phases"]["detect_s"] > 0
        listed = subprocess.run(
            [
                sys.executable,
                "-m",
                "backout",
                "--db",
                result["database_url"],
                "rehearsals",
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert listed.returncode == 0, listed.stderr
        [evidence] = json.loads(listed.stdout)
        assert (evidence["run_id"], evidence["outcome"]) == (drill["run_id"], "succeeded")
        assert (workdir / "releases" / "current").readlink() == Path("v1")  # restored again
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_a_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = {**demo_env(tmp_path), "BACKOUT_DEMO_PORT": str(busy.getsockname()[1])}
        done = subprocess.run(
            [*DEMO, "--json"], capture_output=True, text=True, env=env, timeout=60
        )
    assert done.returncode == 1
    assert "cannot listen on 127.0.0.1" in done.stderr
    assert "hint: set BACKOUT_DEMO_PORT to a free port" in done.stderr
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == []
