"""Notices across fork(): a child made while a thread of the parent held the notices' lock
(the listening thread takes it many times a second) must not inherit it held, or its
first ring (a Ctrl-C rings every doorbell) would hang it for good."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from backout.store import notices
from backout.store.db import open_store

DEADLINE_S = 30.0


def test_a_child_forked_while_the_lock_was_held_still_rings(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'backout.db'}")
    try:
        with notices.doorbell(store.engine, notices.JOURNAL) as bell:
            assert bell.pushed  # the file is watched by a thread of this process
            with notices._LOCK:  # as the watching thread holds it, many times a second
                pid = os.fork()
                if pid == 0:  # the child: ring everyone, listen anew, then leave
                    try:
                        notices.ring_everyone()
                        with notices.doorbell(store.engine, notices.INBOX, "x") as fresh:
                            notices.ring(notices.INBOX, "x")
                            ok = fresh.wait(5) and bell.wait(5)
                        os._exit(0 if ok else 3)
                    finally:
                        os._exit(4)
            deadline = time.monotonic() + DEADLINE_S
            while time.monotonic() < deadline:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    assert os.waitstatus_to_exitcode(status) == 0
                    return
                time.sleep(0.02)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("the forked child hung on the notices' lock")
    finally:
        store.dispose()
