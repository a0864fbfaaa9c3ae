"""The graceful-stop machinery: signals become stop requests without taking a lock in the
handler, a drain timer never outlives its stop, and a stop is never a failed step."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from backout import proc
from backout.errors import ActionError
from backout.stop import STOP, Stopped, on_signals


def wait_for(condition, seconds: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_flood_of_signals_while_waiting_never_deadlocks(tmp_path: Path) -> None:
    """The handler once set an Event from inside the main thread's own Event.wait: it hung.
    Here a child loops on STOP.wait(0) while it receives two signals 10 ms apart, ten
    times over; each must end with the stop seen, never hang."""
    script = tmp_path / "flood.py"
    script.write_text(
        textwrap.dedent("""
        import sys
        from backout.stop import STOP, on_signals
        with on_signals():
            print("ready", flush=True)
            while not STOP.wait(0):
                pass
            # still inside: a second signal arriving after the handlers are restored
            # may end the process by default, which is not what this test is about
            print("stopped", flush=True)
        """)
    )
    for _ in range(10):
        child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        for _ in range(2):
            child.send_signal(signal.SIGTERM)
            time.sleep(0.01)
        out, _ = child.communicate(timeout=20)
        assert "stopped" in out


def test_the_third_signal_is_not_graceful_any_more(tmp_path: Path) -> None:
    script = tmp_path / "stuck.py"
    script.write_text(
        textwrap.dedent("""
        import time
        from backout.stop import on_signals
        with on_signals():
            print("ready", flush=True)
            time.sleep(60)  # something that does not look at the stop
        """)
    )
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    for _ in range(3):
        child.send_signal(signal.SIGTERM)
        time.sleep(0.05)
    assert child.wait(20) == -signal.SIGTERM


def test_a_drain_timer_never_outlives_its_stop() -> None:
    with on_signals(drain=0.3):
        os.kill(os.getpid(), signal.SIGTERM)
        assert wait_for(lambda: STOP.requested)
        assert not STOP.killing.is_set()  # draining: nothing killed yet
    time.sleep(0.6)  # past the drain: a timer left behind would have fired by now
    assert not STOP.requested
    assert not STOP.killing.is_set()


def test_a_drain_ends_by_killing_running_steps() -> None:
    with on_signals(drain=0.2):
        os.kill(os.getpid(), signal.SIGTERM)
        assert wait_for(lambda: STOP.killing.is_set())


def test_a_shim_gone_before_go_is_a_stop_when_stopping() -> None:
    read, write = os.pipe()
    os.close(read)  # the shim died before it was told to go
    try:
        with pytest.raises(ActionError, match="killed before its program started"):
            proc._go(write, proc._Live())
        with pytest.raises(Stopped):
            proc._go(write, proc._Live(stopped=True))
    finally:
        os.close(write)
