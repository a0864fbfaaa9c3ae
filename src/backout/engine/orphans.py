"""Before a run is taken over: make sure no step of it is still running anywhere.

The guarantee: **no one starts a step that a previous executor may still be running.**

The journal knows, for the step that started and never finished, which executor ran it
(host, boot, pid and start time, from ``run_started``/``run_resumed``) and which process
groups it started (``step_process``, journalled before each program may start). A
taker-over settles it so:

* the previous executor stopped gracefully and said its steps were stopped → settled;
* each recorded process group on this host (same boot) is killed, after checking the
  leader's start time so a reused pid is never hit; another boot of this host → gone;
* the in-process part of the step (an HTTP call, a symlink) dies with its executor: if
  that executor was on this host and is gone (or the host rebooted) → settled; a step
  whose only effects are programs (``run``, ``shell``) is settled once its groups are gone
  even if its executor lives on, hung: any program it starts later must first journal
  itself, and that write is fenced off by the taker-over's own;
* otherwise — another host, or an executor that is still alive (stopped, hung, cut off
  from the store) — the step may still be running until its start plus its timeout plus a
  grace period; until then the run cannot be taken over (:class:`StepMayBeRunning`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from backout import proc
from backout.actions import ACTIONS
from backout.engine.invoke import GRACE_S
from backout.engine.layout import Unit
from backout.engine.view import RunView
from backout.errors import ServiceBusyError
from backout.kernel.events import Event, EventKind
from backout.kernel.states import StepStatus


class StepMayBeRunning(ServiceBusyError):
    """A step of the run may still be running under its previous executor."""

    def __init__(self, message: str, *, run_id: str, until: float, hint: str) -> None:
        super().__init__(message, run_id=run_id, hint=hint)
        self.until = until


@dataclass(frozen=True)
class Executor:
    host: str | None
    boot_id: str | None
    pid: int | None
    start: int | None

    @classmethod
    def of(cls, data: dict[str, Any]) -> Executor:
        info = data.get("executor")
        if isinstance(info, dict):
            return cls(info.get("host"), info.get("boot_id"), info.get("pid"), info.get("start"))
        # runs journalled before executors were described: "host:pid:nonce"
        host, _, rest = str(data.get("owner", "")).partition(":")
        pid = rest.partition(":")[0]
        return cls(host or None, None, int(pid) if pid.isdigit() else None, None)

    @classmethod
    def this_process(cls) -> Executor:
        host, boot = proc.this_host()
        return cls(host, boot, os.getpid(), proc.start_time(os.getpid()))

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "boot_id": self.boot_id, "pid": self.pid, "start": self.start}

    def where(self) -> str:
        return f"pid {self.pid} on {self.host}"


@dataclass
class _Attempt:
    seq: int
    at: float
    executor: Executor
    groups: list[proc.Spawned] = field(default_factory=list)
    stopped_cleanly: bool = False


def _attempts(events: list[Event]) -> dict[int, _Attempt]:
    """The last attempt of each step, with the groups it started."""
    executor = Executor(None, None, None, None)
    attempts: dict[int, _Attempt] = {}
    for event in events:
        if event.kind in (EventKind.RUN_STARTED, EventKind.RUN_RESUMED):
            executor = Executor.of(event.data)
        elif event.kind == EventKind.STEP_STARTED and event.step is not None:
            attempts[event.step] = _Attempt(event.seq, event.at, executor)
        elif event.kind == EventKind.STEP_PROCESS and event.step in attempts:
            data = event.data
            group = proc.Spawned(data["pid"], data.get("start"), data["host"], data.get("boot_id"))
            attempts[event.step].groups.append(group)
        elif event.kind == EventKind.RUN_STOPPED and event.data.get("steps_stopped"):
            for attempt in attempts.values():
                attempt.stopped_cleanly = True
    return attempts


def _same_boot(host: str | None, boot: str | None) -> bool | None:
    """True: this host, this boot. False: this host, another boot. None: elsewhere/unknown."""
    here, here_boot = proc.this_host()
    if host != here:
        return None
    if boot is None or here_boot is None:
        return True  # same host name, boot unknown: check processes as if it were this boot
    return boot == here_boot


def _kill_groups(attempt: _Attempt) -> tuple[list[dict[str, Any]], bool]:
    """Kill the attempt's process groups on this host; (what was killed, all settled)."""
    killed: list[dict[str, Any]] = []
    for group in attempt.groups:
        boot = _same_boot(group.host, group.boot_id)
        if boot is False:
            continue
        if boot is None:
            return killed, False
        was_alive = proc.alive(group.pid, group.start)
        if not proc.kill_orphan(group):
            return killed, False
        if was_alive:
            killed.append(group.to_json())
    return killed, True


def _in_process(unit: Unit) -> bool:
    undo = getattr(unit.step, "undo", None) if unit.role == "reverse" else None
    kind = next(iter(undo)) if undo else unit.step.kind
    return ACTIONS.get(kind).in_process


def _executor_gone(executor: Executor) -> bool:
    boot = _same_boot(executor.host, executor.boot_id)
    if boot is False:
        return True
    if boot is None or executor.pid is None:
        return False
    return not proc.alive(executor.pid, executor.start)


def settle(view: RunView, units: list[Unit], events: list[Event]) -> list[dict[str, Any]]:
    """Make sure the run's interrupted steps run nowhere; return the groups killed.
    Raises :class:`StepMayBeRunning` when that cannot be known yet."""
    attempts = _attempts(events)
    killed: list[dict[str, Any]] = []
    for state in view.steps:
        attempt = attempts.get(state.index)
        if state.status is not StepStatus.RUNNING or attempt is None:
            continue
        if attempt.stopped_cleanly:
            continue
        groups_killed, groups_settled = _kill_groups(attempt)
        killed += [{"step": state.index, **group} for group in groups_killed]
        if groups_settled and (
            not _in_process(units[state.index]) or _executor_gone(attempt.executor)
        ):
            continue
        until = attempt.at + units[state.index].step.timeout + GRACE_S
        if time.time() >= until:
            continue  # its own timeout has long ended it
        raise _may_be_running(view.run_id, state.index, state.name, attempt.executor, until)
    return killed


def _may_be_running(
    run_id: str, index: int, name: str, executor: Executor, until: float
) -> StepMayBeRunning:
    when = time.strftime("%H:%M:%S", time.localtime(until))
    return StepMayBeRunning(
        f"step {index + 1} {name!r} may still be running under its previous executor "
        f"({executor.where()}); it cannot run anywhere else before its timeout ends "
        f"at {when}",
        run_id=run_id,
        until=until,
        hint=f"stop that executor, or run `backout resume {run_id}` after {when}; "
        "`backout worker` waits on its own",
    )
