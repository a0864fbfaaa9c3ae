"""inotify on a folder (store/filewatch.py): a write of a watched file, by any process,
wakes the waiter; other files do not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from backout.store import filewatch


@pytest.fixture
def watched(tmp_path: Path) -> filewatch.FolderWatch:
    found = filewatch.watch(tmp_path, {"backout.db", "backout.db-wal"})
    assert found is not None, "inotify is there on Linux"
    return found


def write_from_another_process(path: Path, text: str) -> None:
    code = f"open({str(path)!r}, 'a').write({text!r})"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_write_of_a_watched_file_by_another_process_wakes_the_waiter(
    tmp_path: Path, watched: filewatch.FolderWatch
) -> None:
    try:
        assert not watched.wait(0)  # nothing written yet
        write_from_another_process(tmp_path / "backout.db-wal", "frame")
        assert watched.wait(30)
        assert not watched.wait(0)  # the write was taken: it wakes once
        (tmp_path / "backout.db").write_text("page")  # created, then written
        assert watched.wait(30)
    finally:
        watched.close()


def test_other_files_of_the_folder_do_not_wake_it(
    tmp_path: Path, watched: filewatch.FolderWatch
) -> None:
    try:
        write_from_another_process(tmp_path / "backout.db.lock", "x")
        (tmp_path / "notes.txt").write_text("x")
        assert not watched.wait(0.2)
        write_from_another_process(tmp_path / "backout.db-wal", "frame")  # then one that does
        assert watched.wait(30)
    finally:
        watched.close()


def test_a_folder_that_is_not_there_has_no_watch(tmp_path: Path) -> None:
    assert filewatch.watch(tmp_path / "missing", {"backout.db"}) is None
