"""Four real processes append 500 audit records each at the same time: the chain never forks
(one record per seq, every link verifies) and none is lost — on PostgreSQL (4 x 500), where
writers really run side by side, and on SQLite (4 x 10: its writers queue on one lock)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

from backout.store import audit
from backout.store.db import open_store

WRITERS = 4
EACH = 500
# SQLite queues writers on BEGIN IMMEDIATE, and its busy handler sleeps between tries: a
# few records each are enough to interleave four writers, 500 would take a minute
SQLITE_EACH = 10
WRITER = """
import sys, time
from pathlib import Path
from backout.store import audit
from backout.store.db import open_store

url, name, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
store = open_store(url)
with store.session() as session:  # connected and warm
    audit.head(session)
(go.parent / f"ready-{name}").touch()
while not go.exists():  # start together, so the appends really interleave
    time.sleep(0.005)
for i in range(count):
    with store.session() as session:  # its own transaction, like every real writer
        audit.append(session, name, "test.append", f"writer:{name}", {"i": i})
store.dispose()
"""


def _run_writers(url: str, folder: Path, each: int) -> None:
    open_store(url).dispose()  # migrate first: the race is on the appends
    go = folder / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, f"w{n}", str(each), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(WRITERS)
    ]
    deadline = time.monotonic() + 60
    while len(list(folder.glob("ready-*"))) < WRITERS and time.monotonic() < deadline:
        time.sleep(0.01)  # every writer imported and connected
    go.touch()
    for proc in procs:
        _, stderr = proc.communicate(timeout=100)
        assert proc.returncode == 0, stderr


def _check_chain(url: str, each: int) -> None:
    store = open_store(url)
    try:
        with store.session() as session:
            result = audit.verify(session)
            rows = audit.log(session, action="test.append", limit=WRITERS * each + 1)
    finally:
        store.dispose()
    assert result.ok, result.problem
    assert result.records == WRITERS * each
    assert [row.seq for row in rows] == list(range(1, WRITERS * each + 1))
    for n in range(WRITERS):
        mine = [row.details["i"] for row in rows if row.actor == f"w{n}"]
        assert mine == list(range(each))  # each writer's records in its own order
    if each < EACH:
        return  # SQLite's busy handler sleeps between tries: few records may not interleave
    # the writers really interleaved: the chain is not four runs one after another
    switches = sum(1 for a, b in itertools.pairwise(rows) if a.actor != b.actor)
    assert switches > WRITERS


def test_four_writers_on_postgresql_never_fork_the_chain(postgres_url: str, tmp_path: Path) -> None:
    _run_writers(postgres_url, tmp_path, EACH)
    _check_chain(postgres_url, EACH)


def test_four_writers_on_sqlite_never_fork_the_chain(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'backout.db'}"
    _run_writers(url, tmp_path, SQLITE_EACH)
    _check_chain(url, SQLITE_EACH)
