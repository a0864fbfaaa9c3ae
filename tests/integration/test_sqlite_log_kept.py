"""SQLite: opening a second store on a file this process already has open must not drop the
locks its connections hold. If it did, another process closing its last connection would
take this one for gone and delete the write-ahead log this process still writes to: its
commits would go to a deleted file, seen by no one else and lost at exit (found by the
takeover bench: a worker resumed a run, and nobody ever saw the events it journalled)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from backout.store.db import Store

COUNT = "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute({!r}).fetchone()[0])"


def seen_elsewhere(path: Path, query: str) -> str:
    """What a connection in another process reads (it closes at exit, as `backout status`'s
    does)."""
    done = subprocess.run(
        [sys.executable, "-c", COUNT.format(query), str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def test_a_second_store_on_the_same_file_keeps_the_first_ones_commits(tmp_path: Path) -> None:
    path = tmp_path / "backout.db"
    first = Store(f"sqlite:///{path}")
    second = Store(f"sqlite:///{path}")
    try:
        first.open()
        with first.session() as session:
            session.execute(text("CREATE TABLE marks (n INTEGER)"))
            session.execute(text("INSERT INTO marks VALUES (1)"))
        second.open()  # checks the file is a database, as every store opening does
        with second.session(read_only=True) as session:
            session.execute(text("SELECT 1"))
        assert seen_elsewhere(path, "SELECT count(*) FROM marks") == "1"  # and closes
        assert (tmp_path / "backout.db-wal").exists(), "the log this process writes is gone"
        with first.session() as session:
            session.execute(text("INSERT INTO marks VALUES (2)"))
        assert seen_elsewhere(path, "SELECT count(*) FROM marks") == "2"
    finally:
        second.dispose()
        first.dispose()
    assert seen_elsewhere(path, "SELECT group_concat(n) FROM marks") == "1,2"
