"""Watch many deployed releases in one process: ``backout watch a.yaml b.yaml`` or a folder.

Each plan gets its own watch run, journalled, leased and backed out exactly as when it is
watched alone (the engine is the same); what the runs share is what makes a fleet cheap:

* one :class:`~backout.telemetry.hub.TelemetryHub`: an asyncio loop with one HTTP connection
  pool, each ``/metrics`` target scraped once per interval and each Prometheus query sent
  once, however many triggers read them;
* one heartbeat writing every lease at once (engine/lease.py), one PostgreSQL connection
  listening for inbox notices (store/notices.py), one look a tick at the trigger inbox for
  every watched service, and the store's small connection pool;
* a thread per run that sleeps until its doorbell rings (a reading, an alert, a person),
  so an idle watch costs nothing between readings.

Every plan is loaded and checked before any run is made: one bad plan refuses them all, with
each plan's problems listed. A service may appear once. The exit code is the worst outcome:
1 a backout failed, 3 a run needs attention, 4 at least one release was backed out (and
verified), 0 all healthy for the whole watch.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backout.commands.caller import Caller
from backout.commands.runs import handed_off, refuse_lint_errors, refuse_release_users
from backout.engine.create import create_run
from backout.engine.journal import Observer
from backout.engine.runner import Execution, execute
from backout.errors import BackoutError, PlanError, UsageError
from backout.kernel.events import Event, EventKind
from backout.plans import load_plan, with_notify_defaults
from backout.reports import RunReport, run_report
from backout.spec.environments import select_environment
from backout.spec.loader import LoadedPlan
from backout.stop import STOP, Stopped
from backout.store import inbox, leases, notices
from backout.store.models import RunRow
from backout.telemetry.hub import TelemetryHub
from backout.triggers.lag import LagRecorder, LagSummary
from backout.triggers.watcher import POLL_PUSHED_S, TICK_S

PLAN_SUFFIXES = (".yaml", ".yml")
Say = Callable[[str], object]  # one line of progress for a person
# the events a fleet's progress shows, one line each (a thousand runs: only what matters)
SHOWN = {EventKind.TRIGGER_FIRED, EventKind.RUN_FINISHED, EventKind.RUN_NEEDS_ATTENTION}
# runs setting up at once (reading their plan, journal and baseline, building detectors,
# first scrapes): more only contend for the store's few connections and the interpreter
STARTING = 4


@dataclass
class Outcome:
    """One watched deployment: its run's report, or why it could not go on."""

    plan: str
    service: str
    run_id: str | None = None
    report: RunReport | None = None
    error: str = ""
    exit_code: int = 1

    @property
    def stopped(self) -> bool:
        return self.report is None and self.error.startswith("stopped by")

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "service": self.service,
            "run_id": self.run_id,
            "exit_code": self.exit_code,
            "error": self.error or None,
            "run": self.report.to_json() if self.report else None,
        }


@dataclass
class FleetReport:
    outcomes: list[Outcome]
    lag: LagSummary
    requests: int  # HTTP requests the hub sent (telemetry), for the curious
    stopped: Stopped | None = None

    @property
    def exit_code(self) -> int:
        if self.stopped is not None:
            return self.stopped.exit_code
        codes = {o.exit_code for o in self.outcomes}
        for code in (1, 2, 3, 4):
            if code in codes:
                return code
        return max(codes, default=0)

    def to_json(self) -> dict[str, Any]:
        return {
            "deployments": len(self.outcomes),
            "exit_code": self.exit_code,
            "lag": self.lag.to_json(),
            "telemetry_requests": self.requests,
            "runs": [o.to_json() for o in self.outcomes],
        }


def plan_paths(arguments: list[str]) -> list[Path]:
    """The plan files the arguments name: files as they are, a folder's ``*.yaml``/``*.yml``
    (not its sub-folders), in name order, each once."""
    found: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.suffix in PLAN_SUFFIXES and p.is_file())
            if not inside:
                raise UsageError(
                    f"{argument}: the folder holds no plan (*.yaml, *.yml)",
                    hint="name plan files, or a folder that holds them",
                )
            found += inside
        elif path.exists():
            found.append(path)
        else:
            raise UsageError(f"{argument}: no such file or folder", hint="check the path")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return [Path(p) for p in unique]


@dataclass(frozen=True)
class _Ready:
    path: Path
    loaded: LoadedPlan
    environment: str | None
    service: str


def _prepare(caller: Caller, paths: list[Path], environment: str | None) -> list[_Ready]:
    """Load and check every plan; refuse them all if any is wrong, saying what of each."""
    ready: list[_Ready] = []
    issues, problems = [], []
    for path in paths:
        try:
            loaded = with_notify_defaults(load_plan(path), caller.notify)
            name = select_environment(loaded.plan, environment)
            if not loaded.plan.triggers:
                raise UsageError(
                    f"{path}: the plan has no `triggers:` to watch",
                    hint="add triggers (docs/triggers.md)",
                )
            refuse_release_users(loaded)
            refuse_lint_errors(loaded, False)
        except PlanError as exc:
            issues += exc.issues
            continue
        except UsageError as exc:
            problems.append(exc.message if str(path) in exc.message else f"{path}: {exc.message}")
            continue
        ready.append(_Ready(path, loaded, name, loaded.plan.service_key(name)))
    if issues:
        raise PlanError(issues)
    if problems:
        raise UsageError("\n".join(problems), hint="fix these plans; no run was started")
    seen: dict[str, Path] = {}
    for item in ready:
        if item.service in seen:
            raise UsageError(
                f"{seen[item.service]} and {item.path} both watch service {item.service!r}",
                hint="one run per service at a time: watch each service once",
            )
        seen[item.service] = item.path
    return ready


def watch_many(
    caller: Caller,
    arguments: list[str],
    seconds: float,
    say: Say = lambda _line: None,
    change_id: int | None = None,
    environment: str | None = None,
    metrics: Callable[[LagRecorder], contextlib.AbstractContextManager[object]] | None = None,
) -> FleetReport:
    """Watch every plan the arguments name for ``seconds``, in this process."""
    ready = _prepare(caller, plan_paths(arguments), environment)
    lag = LagRecorder()
    started = time.time()
    with contextlib.ExitStack() as stack:
        hub = stack.enter_context(TelemetryHub())
        if metrics is not None:
            stack.enter_context(metrics(lag))
        stack.enter_context(_inbox_looks(caller, started))
        fleet = _Fleet(caller, hub, lag, say)
        started_all = fleet.start(ready, seconds, change_id)
        stopped = fleet.wait() or started_all
    return FleetReport(fleet.outcomes, lag.summary(), hub.requests, stopped)


class _Fleet:
    def __init__(self, caller: Caller, hub: TelemetryHub, lag: LagRecorder, say: Say) -> None:
        self.caller, self.hub, self.lag, self.say = caller, hub, lag, say
        self.outcomes: list[Outcome] = []
        self.threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._active = 0
        self._starting = threading.Semaphore(STARTING)

    def start(self, ready: list[_Ready], seconds: float, change_id: int | None) -> Stopped | None:
        """Make the runs one by one (each in its transaction) and start each one's thread;
        a stop now starts nothing more."""
        self.say(f"watching {len(ready)} deployments for {seconds:g}s")
        for count, item in enumerate(ready, 1):
            if STOP.requested:
                return Stopped(STOP.signum)
            outcome = Outcome(str(item.path), item.service)
            self.outcomes.append(outcome)
            try:
                row, owner = self._create(item, seconds, change_id)
                outcome.run_id = row.id
            except BackoutError as exc:
                outcome.error, outcome.exit_code = str(exc), exc.exit_code
                self.say(f"{item.service}: not started: {exc.message}")
                continue
            thread = threading.Thread(
                target=self._run,
                args=(outcome, item, row, owner),
                name=f"backout-watch-{item.service}",
                daemon=True,
            )
            self.threads.append(thread)
            thread.start()
            if count % 100 == 0 and count < len(ready):
                self.say(f"started {count} of {len(ready)}")
        return None

    def _create(self, item: _Ready, seconds: float, change_id: int | None) -> tuple[RunRow, str]:
        owner = leases.new_owner()
        extra = {"mode": "watch", "watch_for": seconds, "environment": item.environment}
        caller = self.caller
        row = create_run(
            caller.store, item.loaded, caller.actor, owner, caller.lease_ttl, change_id, extra
        )
        return row, owner

    def _run(self, outcome: Outcome, item: _Ready, row: RunRow, owner: str) -> None:
        caller = self.caller
        watching = _Once(self._started_watching)
        observer = self._observer(item.service, watching)
        execution = Execution(
            caller.store,
            row,
            item.loaded.plan,
            owner,
            caller.actor,
            caller.lease_ttl,
            observer=observer,
            heartbeat=caller.heartbeat,
            hub=self.hub,
            lag=self.lag.for_service(item.service),
        )
        self._starting.acquire()
        try:
            try:
                report = run_report(row, execute(execution))
                outcome.report = handed_off(caller, row, report, observer)
                outcome.exit_code = outcome.report.exit_code
            except Stopped as stop:
                outcome.error, outcome.exit_code = f"stopped by {stop.name}", stop.exit_code
            except BackoutError as exc:
                outcome.error, outcome.exit_code = str(exc), exc.exit_code
                self.say(f"{item.service}: {exc.message}")
            except Exception as exc:  # one run's bug must not end the others' watch
                outcome.error = f"{type(exc).__name__}: {exc}"
                self.say(f"{item.service}: internal error: {outcome.error}")
        finally:
            if not watching.done:
                self._starting.release()
            elif not watching.ended():
                self._count(-1)

    def _started_watching(self) -> None:
        """A run watches now: the next may set up (and the gauge counts it)."""
        self._starting.release()
        self._count(+1)

    def _count(self, change: int) -> None:
        with self._lock:
            self._active += change
            self.lag.watched.set(self._active)

    def _observer(self, service: str, watching: _Once) -> Observer:
        def observe(event: Event, _view: object) -> None:
            if event.kind == EventKind.WATCH_STARTED:
                watching()
            elif (
                event.kind in (EventKind.BACKOUT_STARTED, EventKind.RUN_FINISHED)
                and watching.done
                and not watching.ended()
            ):
                self._count(-1)
            if event.kind not in SHOWN:
                return
            data = event.data
            if event.kind == EventKind.TRIGGER_FIRED:
                self.say(f"{service}: {data.get('trigger')} fired: {data.get('summary', '')}")
            elif event.kind == EventKind.RUN_FINISHED:
                result = data.get("result") or data.get("status", "")
                self.say(f"{service}: {result} {data.get('message', '')}".rstrip())
            else:
                self.say(f"{service}: needs attention: {data.get('message', '')}")

        return observe

    def wait(self) -> Stopped | None:
        """Until every run ends (a stop reaches each of them at its next look at the clock)."""
        for thread in self.threads:
            thread.join()
        stopped = [o for o in self.outcomes if o.stopped]
        if not stopped or not STOP.requested:
            return None
        stop = Stopped(STOP.signum)
        stop.where = (
            f"while watching: {len(stopped)} run(s) interrupted; continue each with "
            "`backout resume RUN`, or let `backout worker` finish them"
        )
        return stop


class _Once:
    """Calls ``then`` the first time it is called; remembers whether the watch ended too."""

    def __init__(self, then: Callable[[], None]) -> None:
        self.then, self.done, self._ended = then, False, False

    def __call__(self) -> None:
        if not self.done:
            self.done = True
            self.then()

    def ended(self) -> bool:
        """Whether the watch had ended already; marks it ended from now on."""
        ended, self._ended = self._ended, True
        return ended


@contextlib.contextmanager
def _inbox_looks(caller: Caller, since: float) -> Iterator[None]:
    """One look at the trigger inbox for every watched service at once, ringing the
    doorbells of those with something waiting: each watch then reads only its own. Every
    ``TICK_S`` without notices from other processes (SQLite), else every
    ``POLL_PUSHED_S``, as the fallback for a notice lost with a connection."""
    done = threading.Event()
    engine = caller.store.engine
    with notices.doorbell(engine, notices.INBOX, "backout-fleet") as bell:

        def look() -> None:
            rang_stop = False
            while not done.wait(POLL_PUSHED_S if bell.pushed else TICK_S):
                if STOP.requested and not rang_stop:  # every watch looks at the stop now
                    notices.ring_everyone()
                    rang_stop = True
                with contextlib.suppress(Exception), caller.store.session(read_only=True) as s:
                    for service in inbox.services_waiting(s, since):
                        notices.ring(notices.INBOX, service)

        thread = threading.Thread(target=look, name="backout-inbox-looks", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(timeout=5)


def metrics_server(
    address: str,
) -> Callable[[LagRecorder], contextlib.AbstractContextManager[object]]:
    """``--metrics HOST:PORT``: serve the lag recorder's registry at /metrics while the
    watch runs (checked now: a bad address stops before any run is made)."""
    host, _, port_text = address.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(
            f"--metrics {address!r}: expected HOST:PORT",
            hint="e.g. --metrics 127.0.0.1:9464 (port 0 is not allowed: scrapers need it)",
        )
    host = host.strip("[]")

    @contextlib.contextmanager
    def serve(lag: LagRecorder) -> Iterator[object]:
        from prometheus_client import start_http_server

        try:
            server, thread = start_http_server(int(port_text), host, registry=lag.registry)
        except OSError as exc:
            raise UsageError(
                f"--metrics {address}: cannot listen there: {exc.strerror or exc}",
                hint="choose a free port, or a host address of this machine",
            ) from None
        try:
            yield server
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

    return serve
