"""Rehearsal verbs: drill a plan's backout (``rehearse``) and list the evidence.

A drill whose fault kills the executor runs its executor in a child process, which the
fault kills with SIGKILL; the caller's process then resumes the run from its journal. How
the child is made is the caller's choice (:data:`StartExecutor`): the CLI forks
(:func:`forked_executor`: the child shares its live progress), a server, whose threads a
fork would not copy, spawns a fresh interpreter (:func:`spawned_executor`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from backout.changes.gate import rehearsal_check
from backout.changes.policy import load_policy
from backout.commands.caller import Caller
from backout.commands.follow import follow
from backout.commands.runs import refuse_release_users, resume, start_run
from backout.engine.journal import Observer
from backout.errors import ServiceBusyError, UsageError
from backout.faults import FAULTS
from backout.kernel.events import EventKind
from backout.plans import KINDS, load_plan
from backout.reports import DrillDue, RehearsalReport, RehearsalSummary
from backout.spec.environments import select_environment
from backout.spec.lint_rehearsal import missing_targets
from backout.spec.loader import LoadedPlan
from backout.spec.models import Notify
from backout.stop import Stopped, on_signals
from backout.store import changes as change_repo
from backout.store import repo
from backout.store.db import Store
from backout.store.models import RehearsalRow


def parse_fault(text: str) -> dict[str, Any]:
    """``KIND:key=value,key=value`` (``slow:step=switch back,by=2s``) as a fault spec."""
    kind, _, rest = text.partition(":")
    kind = kind.strip()
    options: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(
                f"--fault {text!r}: {pair!r} is not key=value",
                hint="e.g. --fault 'slow:step=switch back,by=2s'",
            )
        options[key.strip()] = value.strip()
    return {"kind": kind, "options": options}


def _armed(loaded: LoadedPlan, extra: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The plan's faults and the command line's, each checked against its kind and the
    plan (a fault naming a step or check the plan lacks would silently do nothing)."""
    rehearsal = loaded.plan.rehearsal
    specs = [
        {"kind": f.kind, "options": f.options} for f in (rehearsal.faults if rehearsal else [])
    ]
    armed = []
    for spec in [*specs, *extra]:
        if spec["kind"] not in FAULTS:
            raise UsageError(
                f"no fault named {spec['kind']!r}", hint=f"faults: {', '.join(FAULTS.names())}"
            )
        fault = FAULTS.get(spec["kind"])
        try:
            options = fault.Options.model_validate(spec["options"])
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise UsageError(f"fault {spec['kind']!r}: {problems}") from exc
        for what, name, hint in missing_targets(loaded.plan, fault.targets(options)):
            raise UsageError(
                f"fault {spec['kind']!r}: the plan has no {what} named {name!r}", hint=hint
            )
        armed.append({"kind": spec["kind"], "options": options.model_dump(mode="json")})
    return armed


@dataclass(frozen=True)
class DrillExecutor:
    """What the child process executing a drill needs to start its run: the store, who
    acts (as the parent's caller), the plan as the parent loaded it, the drill's settings."""

    store_url: str
    actor: str
    lease_ttl: float
    heartbeat: float
    notify: Notify | None
    loaded: LoadedPlan
    extra: dict[str, Any]

    @classmethod
    def of(cls, caller: Caller, loaded: LoadedPlan, extra: dict[str, Any]) -> DrillExecutor:
        url, ttl, beat = caller.store.url, caller.lease_ttl, caller.heartbeat
        return cls(url, caller.actor, ttl, beat, caller.notify, loaded, extra)

    def __getstate__(self) -> dict[str, Any]:
        """What a spawned child is sent: the plan without the registries of kinds it was
        checked against (they hold every kind this process made, a plugin's or a test's,
        which the child may not be able to import); the child's own take their place."""
        state = dict(self.__dict__)
        state["loaded"] = replace(self.loaded, kinds=None)  # type: ignore[arg-type]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state["loaded"] = replace(state["loaded"], kinds=KINDS)
        self.__dict__.update(state)

    def start(self, observer: Observer | None) -> None:
        """Start the drill's run, in the child; it ends there, or the fault kills the child."""
        with Store(self.store_url) as store:
            caller = Caller(store, self.actor, self.lease_ttl, self.notify, self.heartbeat)
            start_run(caller, self.loaded, self.extra, observer, False, None)


StartExecutor = Callable[[DrillExecutor, Observer | None], int]
"""Runs a drill's executor in a child process, to its end; the child's exit status
(negative: the signal that ended it, as :mod:`subprocess` says it)."""


def rehearse(
    caller: Caller,
    path: str | Path,
    manual: bool = False,
    faults: Sequence[dict[str, Any]] = (),
    observer: Observer | None = None,
    environment: str | None = None,
    executor: StartExecutor | None = None,
) -> RehearsalReport:
    """One drill of the plan's backout: steady state, break, detect, back out, verify,
    steady state again; faults act on the backout. The run is journalled like any other
    (resume it after a crash), and its evidence is recorded when it finishes. A fault that
    kills the executor has ``executor`` (default: :func:`forked_executor`) run it."""
    loaded = load_plan(path)
    plan = loaded.plan
    if plan.rehearsal is None and not manual:
        raise UsageError(
            f"{path}: the plan has no `rehearsal:` section to break the service with",
            hint="add `rehearsal: {break: [...]}` (docs/rehearsals.md), or time the backout "
            "alone with --trigger manual",
        )
    if not manual and not [t for t in plan.triggers if t.kind != "alertmanager"]:
        what = (
            "only `alertmanager:` triggers, which a drill cannot hear"
            if plan.triggers
            else ("no `triggers:`")
        )
        raise UsageError(
            f"{path}: the plan has {what} to detect the break with",
            hint="add telemetry triggers (docs/triggers.md), or detect by hand with "
            "--trigger manual",
        )
    name = select_environment(plan, environment)
    refuse_release_users(loaded)
    armed = _armed(loaded, faults)
    extra = {"mode": "rehearsal", "manual": manual, "faults": armed, "environment": name}
    if any(FAULTS.get(spec["kind"]).kills_executor for spec in armed):
        return _supervised(caller, loaded, extra, observer, executor or forked_executor)
    run = start_run(caller, loaded, extra, observer, False, None)
    return report_of(caller, run.run_id)


def _supervised(
    caller: Caller,
    loaded: LoadedPlan,
    extra: dict[str, Any],
    observer: Observer | None,
    executor: StartExecutor,
) -> RehearsalReport:
    """A drill whose fault kills the executor: the drill runs in a child process, the fault
    kills it with SIGKILL, and this process resumes the run from its journal, as an
    operator or a worker would (the dead owner's lease is taken over at once)."""
    started = time.time()
    code = executor(DrillExecutor.of(caller, loaded, extra), observer)
    service = loaded.plan.service_key(extra.get("environment"))
    with caller.store.session() as session:
        newest = repo.list_runs(session, service, 1)
    if not newest or newest[0].created_at < started:
        raise UsageError(
            f"the drill's executor ended (exit {code}) before it created a run",
            hint="see the error above",
        )
    run_id = newest[0].id
    if code == -signal.SIGKILL:
        try:
            resume(caller, run_id, observer=observer)
        except ServiceBusyError:
            # a worker on the same store took the dead executor's run over first: the
            # drill's verdict is the run's end, wherever it runs
            for _ in follow(caller, run_id):
                pass
    return report_of(caller, run_id)


def forked_executor(executor: DrillExecutor, observer: Observer | None) -> int:
    """The drill's executor in a forked copy of this process (its progress shows as this
    one's). Only for a process with no other threads: a fork copies the calling one alone."""

    def child() -> None:  # a forked copy: never return into the parent's code
        code = 1
        try:
            executor.start(observer)
            code = 0
        except BaseException as exc:
            print(f"error: the drill's executor: {exc}", file=sys.stderr)
        finally:
            os._exit(code)

    process = multiprocessing.get_context("fork").Process(target=child, name="backout-drill")
    process.start()
    process.join()
    assert process.exitcode is not None  # joined
    return process.exitcode


SPAWNED = "from backout.commands.rehearsals import spawned_main; spawned_main()"
STOP_GRACE_S = 30.0  # a spawned executor asked to stop has this long to stop at a safe point
_LENGTH = struct.Struct("!Q")


def spawned_executor(executor: DrillExecutor, observer: Observer | None) -> int:
    """The drill's executor in a fresh interpreter (``python -c``, never a fork: safe in a
    process with threads, such as a server's). It reads its work on stdin (so no secret of
    the store's URL shows in ``ps``) and keeps reading: when stdin closes (this process
    died, or gave up waiting) it stops at a safe point, as on SIGTERM. ``observer`` stays
    here: the child has none. It is waited for, and never outlives this call."""
    work = pickle.dumps(executor)
    process = subprocess.Popen([sys.executable, "-P", "-c", SPAWNED], stdin=subprocess.PIPE)
    try:
        assert process.stdin is not None  # a pipe was asked for
        with contextlib.suppress(BrokenPipeError):  # it died at once: its status says why
            process.stdin.write(_LENGTH.pack(len(work)) + work)
            process.stdin.flush()
        return process.wait()
    finally:
        _ended(process)


def _ended(process: subprocess.Popen[bytes]) -> None:
    """Close the child's stdin (it stops, if it still runs); SIGKILL it after the grace."""
    with contextlib.suppress(OSError):
        if process.stdin is not None:
            process.stdin.close()
    try:
        process.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def spawned_main() -> None:
    """The spawned executor's process: start the drill's run read from stdin; stop it
    gracefully on SIGTERM, Ctrl-C, or when stdin closes. Exits 0, 1 on an error, or 128 +
    the signal that stopped it (the kill fault's SIGKILL ends it before it exits)."""
    code = 1
    try:
        (size,) = _LENGTH.unpack(_read(_LENGTH.size))
        # the parent wrote it to this process's own pipe: nobody else can
        executor: DrillExecutor = pickle.loads(_read(size))  # noqa: S301
        with on_signals():
            threading.Thread(target=_stop_when_orphaned, name="backout-orphan", daemon=True).start()
            executor.start(None)
        code = 0
    except Stopped as exc:
        code = exc.exit_code
    except BaseException as exc:
        print(f"error: the drill's executor: {exc}", file=sys.stderr)
    sys.exit(code)


def _read(size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = os.read(0, size - len(data))
        if not chunk:
            raise UsageError("the drill's executor got no work: its parent is gone")
        data += chunk
    return data


def _stop_when_orphaned() -> None:
    """Stop the run when stdin closes: the process that spawned this one is gone, or asks."""
    while os.read(0, 4096):
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def drill_of(caller: Caller, run_id: str) -> RehearsalReport | None:
    """The drill ``run_id`` is, or None when it is not a rehearsal's run."""
    with caller.store.session() as session:
        row = repo.get_run(session, run_id)
        if row.plan_doc.get("mode") != "rehearsal":
            return None
    return report_of(caller, row.id)


def report_of(caller: Caller, run_id: str) -> RehearsalReport:
    """The drill of ``run_id`` as its evidence records it (or as it stands, unfinished)."""
    from backout.commands.runs import status

    run = status(caller, run_id)
    with caller.store.session() as session:
        row = session.scalars(select(RehearsalRow).where(RehearsalRow.run_id == run.run_id)).first()
        events = repo.load_events(session, run.run_id)
        doc = repo.get_run(session, run.run_id).plan_doc
    steady = {
        str(e.data.get("phase")): bool(e.data.get("passed"))
        for e in events
        if e.kind == EventKind.STEADY_STATE
    }
    plan_rto = doc.get("plan", {}).get("rto")
    return RehearsalReport(
        rehearsal_id=row.id if row else None,
        plan=run.plan,
        plan_version=run.plan_version,
        passed=bool(row and row.outcome == "succeeded"),
        message=run.message,
        phases=dict(row.phases) if row else {},
        steady=steady,
        faults=list(row.faults) if row else _faults_so_far(doc, events),
        journal_hash=row.journal_hash if row else None,
        rto_s=float(plan_rto) if plan_rto is not None else None,
        run=run,
    )


def _faults_so_far(doc: dict[str, Any], events: list[Any]) -> list[dict[str, Any]]:
    """An unfinished drill's faults, and whether each acted yet (from the journal)."""
    acted = {str(e.data.get("fault")) for e in events if e.kind == EventKind.FAULT_INJECTED}
    return [{**spec, "acted": spec["kind"] in acted} for spec in doc.get("faults", [])]


def rehearsals(caller: Caller, plan: str | None = None, limit: int = 20) -> list[RehearsalSummary]:
    """Recorded drills, newest first, optionally of one plan."""
    query = select(RehearsalRow).order_by(RehearsalRow.id.desc()).limit(limit)
    if plan:
        query = query.where(RehearsalRow.plan == plan)
    with caller.store.session() as session:
        return [
            RehearsalSummary(
                r.id,
                r.plan,
                r.plan_version,
                r.service,
                r.environment,
                r.outcome,
                r.duration_s,
                r.at,
                r.actor,
                r.run_id,
                r.message,
            )
            for r in session.scalars(query)
        ]


def drills_due(
    caller: Caller, paths: Sequence[str | Path], policy_path: str | None = None
) -> list[DrillDue]:
    """For each plan: is a drill due? (No passing rehearsal of this plan version, or it is
    older than the policy allows for the plan's risk, or it did not fit the rto: what the
    gate would refuse.) And did the backout get slower: the latest passing drill's total
    more than 20% above the median of the ones before it."""
    policy, _ = load_policy(policy_path)
    now = time.time()
    due: list[DrillDue] = []
    for path in paths:
        loaded = load_plan(path)
        with caller.store.session() as session:
            rows = change_repo.rehearsals(session, loaded.plan.plan)
        rule = policy.for_risk(loaded.plan.risk).rehearsal
        check = rehearsal_check(rule, loaded, rows, now)
        due.append(
            DrillDue(
                plan=loaded.plan.plan,
                file=str(path),
                version=loaded.version,
                risk=loaded.plan.risk,
                required=check.required,
                due=check.required and not check.passed,
                reason=check.reason,
                slower=_slower(rows),
            )
        )
    return due


SLOWER = 1.2  # the latest drill is flagged when it took 20% longer than the usual


def _slower(rows: Sequence[RehearsalRow]) -> str | None:
    passing = sorted((r for r in rows if r.outcome == "succeeded"), key=lambda r: r.at)
    if len(passing) < 3:
        return None
    *before, latest = passing[-11:]
    usual = statistics.median(r.duration_s for r in before)
    if usual > 0 and latest.duration_s > SLOWER * usual:
        return (
            f"the latest drill took {latest.duration_s:.2f}s, "
            f"{latest.duration_s / usual - 1:.0%} more than the median {usual:.2f}s "
            f"of the {len(before)} before it"
        )
    return None
