"""Push, not poll: whoever writes a trigger-inbox entry or releases a lease rings a doorbell,
and the watch or worker waiting for it looks at once. Here the polls are switched off (their
intervals set to an hour), so only a ring can make the waiter see the row in time; the
tables stay the truth (store/notices.py).

* in one process (SQLite and PostgreSQL): the Alertmanager listener wakes the watch;
* across processes (PostgreSQL's LISTEN/NOTIFY; on SQLite, another connection's commit seen
  by ``PRAGMA data_version``): `backout trigger` in another process wakes a watch, and a
  run stopped by SIGTERM in another process wakes a sleeping `backout worker`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from backout import commands
from backout.reports import RunReport
from backout.settings import Settings
from backout.store import inbox, notices
from backout.store.db import open_store
from backout.triggers import watcher
from backout.triggers.listener import TOKEN_ENV
from tests.callers import caller
from tests.e2e import procs
from tests.services import free_port, wait_until

TOKEN = "push-test-token-0c9e51d2"
HOUR = 3600.0
PLAN = """\
plan: pushed
service: pushed
triggers:
  - name: paged
    alertmanager: {match: {service: pushed}}
steps:
  - name: back out
    run: [sh, -c, 'echo backed-out >> marks']
"""


@pytest.fixture
def no_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """A watch reads its inbox only when rung (and once as it starts)."""
    monkeypatch.setattr(watcher, "TICK_S", HOUR)
    monkeypatch.setattr(watcher, "POLL_PUSHED_S", HOUR)


def settings(url: str) -> Settings:
    return Settings(database_url=url, actor="tester", lease_ttl=5.0)


def watching(url: str) -> str | None:
    newest = commands.runs(caller(settings(url)), "pushed", limit=1)
    if not newest:
        return None
    run_id = str(newest[0].run_id)
    kinds = [e.kind for e in commands.journal(caller(settings(url)), run_id)]
    return run_id if "watch_started" in kinds else None


def in_thread(work: Callable[[], RunReport]) -> tuple[threading.Thread, list[object]]:
    box: list[object] = []

    def run() -> None:
        try:
            box.append(work())
        except BaseException as exc:  # reported by the test thread
            box.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def finished(thread: threading.Thread, box: list[object]) -> RunReport:
    thread.join(60)
    assert not thread.is_alive(), "the watch was never woken"
    result = box[0]
    if isinstance(result, BaseException):
        raise result
    assert isinstance(result, RunReport)
    return result


def webhook() -> bytes:
    now = dt.datetime.now(tz=dt.UTC).isoformat()
    alert = {
        "status": "firing",
        "labels": {"alertname": "HighErrorRate", "service": "pushed"},
        "annotations": {},
        "startsAt": now,
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": "5e1f00a3c2b1d4e7",
    }
    body = {
        "version": "4",
        "groupKey": '{}:{alertname="HighErrorRate"}',
        "status": "firing",
        "receiver": "backout",
        "externalURL": "http://alertmanager.local:9093",
        "alerts": [alert],
    }
    return json.dumps(body).encode()


def post(port: int, body: bytes) -> bytes:
    head = (
        f"POST /alertmanager HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode() + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.usefixtures("no_polls")
def test_the_listener_wakes_the_watch_in_its_process(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "plan.yaml").write_text(PLAN)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.chdir(tmp_path)
    port = free_port()
    me = caller(settings(store_url))
    thread, box = in_thread(
        lambda: commands.watch(me, "plan.yaml", HOUR, listen=f"127.0.0.1:{port}")
    )
    wait_until(lambda: watching(store_url) is not None or not thread.is_alive(), 60, "the watch")
    assert b" 200 " in post(port, webhook()).split(b"\r\n", 1)[0]
    report = finished(thread, box)
    assert (report.status, report.result) == ("succeeded", "backed_out"), report.message
    assert report.trigger is not None
    assert report.trigger["trigger"] == "paged"
    assert (tmp_path / "marks").read_text() == "backed-out\n"


@pytest.mark.usefixtures("no_polls")
def test_a_trigger_from_another_process_wakes_the_watch(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "plan.yaml").write_text(PLAN)
    monkeypatch.chdir(tmp_path)
    me = caller(settings(store_url))
    thread, box = in_thread(lambda: commands.watch(me, "plan.yaml", HOUR, listen=None))
    wait_until(lambda: watching(store_url) is not None or not thread.is_alive(), 60, "the watch")
    other = subprocess.run(
        [sys.executable, "-m", "backout", "trigger", "pushed", "--reason", "pager went off"],
        env={**os.environ, "BACKOUT_DATABASE_URL": store_url, "BACKOUT_ACTOR": "oncall"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert other.returncode == 0, other.stderr
    report = finished(thread, box)
    assert (report.status, report.result) == ("succeeded", "backed_out"), report.message
    assert report.trigger is not None
    assert report.trigger["trigger"] == "manual"


def put_from_another_process(url: str, service: str) -> None:
    """An inbox entry for ``service``, written by a Python of its own."""
    code = (
        "from backout.store.db import open_store; from backout.store import inbox\n"
        f"s = open_store({url!r})\n"
        "with s.session() as session:\n"
        f"    inbox.put(session, {service!r}, 'manual', 'elsewhere', 'tester')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_notices_reach_other_processes_on_both_stores(store_url: str) -> None:
    """An entry written by another process rings the doorbell: PostgreSQL's NOTIFY, or on
    SQLite the watching connection seeing another's commit (``PRAGMA data_version``)."""
    store = open_store(store_url)
    try:
        with notices.doorbell(store.engine, notices.INBOX, "pushed") as bell:
            wait_until(lambda: bell.pushed, 30, "the store to be listened to")
            with store.session() as session:  # this process rings at once
                inbox.put(session, "pushed", "manual", "here", "tester")
            assert bell.wait(30)
            bell.wait(0.3)  # SQLite: the watcher's own ring for that commit, if not yet
            bell.reasons()
            put_from_another_process(store_url, "pushed")
            assert bell.wait(30), "no notice from the other process"
            assert notices.NOTICE in bell.reasons()
    finally:
        store.dispose()


def test_on_sqlite_another_process_commit_wakes_the_watcher_before_its_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SQLite watcher is woken by the file's write (inotify), not by its next look: with
    the look put off for a minute, another process's entry still rings at once."""
    monkeypatch.setattr(notices, "WATCH_S", 60.0)
    url = f"sqlite:///{tmp_path / 'backout.db'}"
    store = open_store(url)
    try:
        with notices.doorbell(store.engine, notices.INBOX, "woken") as bell:
            wait_until(lambda: bell.pushed, 30, "the store to be watched")
            bell.wait(0.3)  # the watcher's first ring (it catches up on what came before)
            bell.reasons()
            put_from_another_process(url, "woken")
            assert bell.wait(30), "no notice from the other process"
            assert notices.NOTICE in bell.reasons()
    finally:
        store.dispose()


WAITING_STEP = """\
plan: pushed
service: pushed
steps:
  - name: wait for go
    run: [sh, -c, 'echo $$ > inside; while [ ! -e go ]; do sleep 0.05; done; echo done >> marks']
    timeout: 60s
    idempotent: true
"""


def test_a_released_lease_wakes_a_sleeping_worker(postgres_url: str, tmp_path: Path) -> None:
    """The worker polls once an hour and the executor's lease lives an hour: only the
    notice sent when the stopped executor releases its lease can wake the worker."""
    (tmp_path / "plan.yaml").write_text(WAITING_STEP)
    env = {**os.environ, "BACKOUT_DATABASE_URL": postgres_url}
    open_store(postgres_url).dispose()  # migrated before either process starts
    worker = subprocess.Popen(
        [sys.executable, "-m", "backout", "worker", "--interval", "1h", "--json"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    runner: subprocess.Popen[str] | None = None
    step = None
    try:
        # its first pass found nothing, and nothing held expires: it sleeps for the hour
        wait_until(lambda: _listening(postgres_url, worker.pid), 60, "the worker to listen")
        runner = subprocess.Popen(
            [sys.executable, "-m", "backout", "run", "plan.yaml"],
            cwd=tmp_path,
            env={**env, "BACKOUT_LEASE_TTL": "3600"},
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        step = int(procs.wait_for_file(tmp_path / "inside"))
        run_id = str(commands.runs(caller(settings(postgres_url)), "pushed")[0].run_id)
        runner.send_signal(signal.SIGTERM)  # stops the step, releases the lease: a notice
        _, stderr = runner.communicate(timeout=60)
        assert runner.returncode == 143, stderr
        (tmp_path / "go").write_text("")
        wait_until(lambda: _status(postgres_url, run_id) == "succeeded", 60, "the worker")
    finally:
        if step is not None:
            procs.kill_group_of(step)
        for proc in (runner, worker):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    assert (tmp_path / "marks").read_text() == "done\n"
    kinds = [e.kind for e in commands.journal(caller(settings(postgres_url)), run_id)]
    assert kinds.count("run_resumed") == 1


def _status(url: str, run_id: str) -> str:
    return commands.status(caller(settings(url)), run_id).status


def _listening(url: str, pid: int) -> bool:
    """Process ``pid`` holds its listening connection (store/notices.py) to the store."""
    import psycopg

    plain = url.replace("postgresql+psycopg://", "postgresql://").split("?")[0]
    with psycopg.connect(plain, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            (f"backout:{pid}:listen",),
        ).fetchone()
    return bool(row and row[0])


def test_a_killed_executor_on_this_host_wakes_a_sleeping_worker(
    store_url: str, tmp_path: Path
) -> None:
    """The worker polls once an hour and the lease lives an hour; it watches the executor
    on this host through a pidfd, so a SIGKILL wakes it at once (SQLite too: no notice)."""
    (tmp_path / "plan.yaml").write_text(WAITING_STEP)
    env = {**os.environ, "BACKOUT_DATABASE_URL": store_url}
    runner = subprocess.Popen(
        [sys.executable, "-m", "backout", "run", "plan.yaml"],
        cwd=tmp_path,
        env={**env, "BACKOUT_LEASE_TTL": "3600"},
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    step = int(procs.wait_for_file(tmp_path / "inside"))
    worker = subprocess.Popen(
        [sys.executable, "-m", "backout", "worker", "--interval", "1h", "--json"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        run_id = str(commands.runs(caller(settings(store_url)), "pushed")[0].run_id)
        wait_until(lambda: _holds_a_pidfd(worker.pid), 60, "the worker to watch the executor")
        runner.kill()  # SIGKILL to the executor's pid only
        assert runner.wait(10) == -signal.SIGKILL
        (tmp_path / "go").write_text("")
        wait_until(lambda: _status(store_url, run_id) == "succeeded", 60, "the worker")
    finally:
        procs.kill_group_of(step)
        for proc in (runner, worker):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    kinds = [e.kind for e in commands.journal(caller(settings(store_url)), run_id)]
    assert kinds.count("run_resumed") == 1


def _holds_a_pidfd(pid: int) -> bool:
    folder = Path(f"/proc/{pid}/fd")
    links = []
    for fd in folder.iterdir():
        try:
            links.append(os.readlink(fd))
        except OSError:  # closed meanwhile
            continue
    return "anon_inode:[pidfd]" in links


def test_a_lease_taken_and_given_back_in_another_process_rings_its_service(
    store_url: str, tmp_path: Path
) -> None:
    """What wakes a worker: another process's run claims its service's lease and releases
    it; the LEASES doorbell of that service rings (a NOTIFY, or SQLite's watch of the file),
    and one of another service does not."""
    store = open_store(store_url)
    (tmp_path / "plan.yaml").write_text("plan: leased\nsteps:\n  - name: one\n    run: ['true']\n")
    try:
        with (
            notices.doorbell(store.engine, notices.LEASES, "leased") as bell,
            notices.doorbell(store.engine, notices.LEASES, "elsewhere") as other,
        ):
            wait_until(lambda: bell.pushed, 30, "the store to be listened to")
            bell.wait(0.3)  # the (re)connection's own ring
            other.wait(0.3)
            done = subprocess.run(
                [sys.executable, "-m", "backout", "--db", store_url, "run", "plan.yaml"],
                cwd=tmp_path,
                capture_output=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
            assert bell.wait(30), "no notice of the lease from the other process"
            assert not other.wait(0.5)
    finally:
        store.dispose()
