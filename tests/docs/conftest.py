"""Fixtures for the executable docs: the ``backout`` the transcripts call, and a session
(working folder, environment, run ids) per document."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs.forkserver import SHIM
from tests.docs.transcripts import Session

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def base_env(bin_dir: Path) -> dict[str, str]:
    """The reader's shell: the test's environment without backout settings, a fixed
    terminal, clock zone and user, ``backout`` first on the PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BACKOUT_") or k in ("BACKOUT_TEST_SESSION", "BACKOUT_TEST_NODE")
    }
    env.update(
        PATH=f"{bin_dir}:{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
        TZ="UTC",
        USER="root",
        LOGNAME="root",
        TERM="dumb",
        PYTHONUNBUFFERED="1",
        OPENBLAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
        NO_COLOR="1",
    )
    env.pop("FORCE_COLOR", None)
    return env


@pytest.fixture(scope="session")
def backout_bin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A folder whose ``backout`` runs commands through the fork server, and the extra
    environment it needs; the installed ``backout`` with BACKOUT_DOCS_SUBPROCESS=1."""
    folder = tmp_path_factory.mktemp("doctest-bin")
    if os.environ.get("BACKOUT_DOCS_SUBPROCESS") == "1":
        yield folder, {}
        return
    socket_path = Path(tempfile.mkdtemp(prefix="bo-fs-")) / "s"  # short: AF_UNIX paths
    shim = folder / "backout"
    shim.write_text(SHIM.format(python=sys.executable), encoding="utf-8")
    shim.chmod(0o755)
    env = {**base_env(folder), "COLUMNS": "100"}
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("forkserver.py")), str(socket_path)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    assert server.stdout is not None
    ready = server.stdout.readline()
    assert ready.strip() == "ready", f"the fork server did not start: {ready!r}"
    try:
        yield folder, {"BACKOUT_DOCS_FORKSERVER": str(socket_path)}
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and any command it still runs
        server.wait(timeout=30)
        server.stdout.close()
        socket_path.unlink(missing_ok=True)
        socket_path.parent.rmdir()


@pytest.fixture
def session(backout_bin: tuple[Path, dict[str, str]]) -> Iterator[Session]:
    """A document's reader: an empty folder under /tmp (the store a command makes by
    default, ``.backout/backout.db``, is in it), removed afterwards."""
    folder, extra = backout_bin
    root = Path(tempfile.mkdtemp(prefix="doc-", dir="/tmp"))
    session = Session(root, {**base_env(folder), **extra})
    try:
        yield session
    finally:
        for cleanup in reversed(session.cleanups):  # what its setups left running
            cleanup()
        shutil.rmtree(root, ignore_errors=True)
