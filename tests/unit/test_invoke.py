"""An action's call with a hard deadline (engine/invoke.py): it runs on a thread kept from
one call to the next, with the caller's context variables; a call given up on keeps its
own thread, which ends when the call returns; every failure comes back as a result."""

from __future__ import annotations

import contextvars
import sys
import threading

import pytest

from backout.engine import invoke
from backout.engine.invoke import with_deadline
from backout.stop import STOP, Stopped

VALUE: contextvars.ContextVar[str] = contextvars.ContextVar("value", default="unset")


def error(message: str) -> str:
    return f"error: {message}"


def test_consecutive_calls_share_one_thread_and_see_the_callers_context() -> None:
    seen: list[tuple[threading.Thread, str]] = []

    def call() -> str:
        seen.append((threading.current_thread(), VALUE.get()))
        VALUE.set("changed inside")  # the call's copy: the caller's is untouched
        return "ok"

    token = VALUE.set("first")
    try:
        assert with_deadline(call, 5, error) == "ok"
        VALUE.set("second")
        assert with_deadline(call, 5, error) == "ok"
    finally:
        VALUE.reset(token)
    (one, first), (two, second) = seen
    assert one is two
    assert one is not threading.current_thread()
    assert (first, second) == ("first", "second")


class Stuck:
    """A call that returns only once released; it notes the thread it ran on."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.thread: threading.Thread | None = None

    def __call__(self) -> str:
        self.thread = threading.current_thread()
        self.release.wait(30)
        return "late"

    def ends_its_thread(self) -> bool:
        """Released: its thread, given up on, ends once the call returned."""
        assert self.thread is not None
        self.release.set()
        self.thread.join(30)
        return not self.thread.is_alive()


def test_a_call_past_its_deadline_is_given_up_and_keeps_its_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(invoke, "GRACE_S", 0.0)
    stuck = Stuck()
    assert with_deadline(stuck, 0.05, error) == "error: did not return within its timeout of 0.05s"
    # the next call does not wait behind the stuck one: it runs on another thread
    assert with_deadline(lambda: threading.current_thread(), 5, error) is not stuck.thread
    assert stuck.ends_its_thread()


def test_failures_come_back_as_results_and_the_thread_goes_on() -> None:
    def raises() -> str:
        raise ValueError("bad value")

    def exits() -> str:
        sys.exit(3)

    assert with_deadline(raises, 5, error) == "error: ValueError: bad value"
    assert with_deadline(exits, 5, error) == "error: SystemExit: 3"
    assert with_deadline(lambda: "fine", 5, error) == "fine"


def test_a_stop_raised_by_the_call_comes_out_as_it_is() -> None:
    def stopped() -> str:
        raise Stopped(15)

    with pytest.raises(Stopped):
        with_deadline(stopped, 5, error)
    assert with_deadline(lambda: "after", 5, error) == "after"


def test_a_stop_that_kills_abandons_a_slow_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(invoke, "ABANDON_S", 0.05)
    slow = Stuck()
    STOP.request(15)
    STOP.killing.set()
    try:
        with pytest.raises(Stopped) as caught:
            with_deadline(slow, 60, error)
    finally:
        STOP.reset()
    assert caught.value.abandoned
    assert slow.ends_its_thread()
    assert with_deadline(lambda: "after", 5, error) == "after"


def test_twenty_calls_leave_at_most_one_thread_behind() -> None:
    before = threading.active_count()
    for _ in range(20):
        with_deadline(lambda: None, 5, error)
    assert threading.active_count() <= before + 1
