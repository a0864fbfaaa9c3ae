"""``backout demo``: a bad release is deployed, caught by the plan's own triggers on the
service's /metrics, backed out by the durable engine and verified, all in a temporary folder.

Order of events: v1 up · traffic · baseline snapshot (with two seconds of the error
signal) · ``commands.deploy`` of v2: the stage's steps (the fault), the checkpoint's
triggers, the stage reversed, the plan's steps, verification · traffic after the backout ·
cleanup. Every time the demo reports comes from the run's journal.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console

from backout import commands
from backout.commands.report import report as write_report
from backout.demo.drill import gate_rehearsal
from backout.demo.inbox import INBOX_ENV, Inbox
from backout.demo.measure import Moments, fault_step, moments, phases, trigger_of, went_live
from backout.demo.processes import (
    OWNER_ENV,
    PORT_ENV,
    choose_port,
    restart,
    stop_all,
)
from backout.demo.summary import print_summary
from backout.demo.timeline import Timeline
from backout.demo.traffic import Traffic
from backout.demo.workdir import RELEASES, layout
from backout.engine.view import RunView
from backout.errors import BackoutError
from backout.kernel.events import Event
from backout.notify import Courier
from backout.plans import load_plan
from backout.postmortem import Format
from backout.reports import RunReport, SnapshotReport
from backout.settings import Settings
from backout.spec.models import Plan
from backout.stop import STOP, Stopped, on_signals

RELEASE = "v2"  # the bad release the demo deploys
SNAPSHOT_WINDOW_S = 2.0  # read the error signal this long while v1 takes traffic
SETTLE_S = 1.0  # and watch the restored release this long after the backout
NOTIFY_FLUSH_S = 5.0  # the notifications of the deploy get this long to reach the inbox


def run_demo(
    json_mode: bool, keep: bool, console: Console, rehearse: bool = False
) -> dict[str, Any]:
    """Play the demo; return its result (``outcome`` is the deploy run's status).

    SIGTERM, SIGHUP and Ctrl-C stop it gracefully (:mod:`backout.stop`): the engine stops
    at its next safe point, then every demo process is stopped and the folder removed, and
    :class:`~backout.stop.Stopped` comes out of here (the CLI exits ``128 + signal``).
    """
    demo = Demo(console, quiet=json_mode, keep=keep, rehearse=rehearse)
    with on_signals():
        try:
            result = demo.play()
            STOP.check()  # a signal during the last moments still counts
        except Stopped as stop:
            demo.cleanup()
            kept = f"; kept {demo.root}" if keep else ", folder removed (nothing to resume)"
            console.print(
                f"demo stopped by {stop.name}: {len(demo.stopped)} process(es) stopped{kept}"
            )
            stop.run_id = None  # the demo's store is gone with its folder: nothing to resume
            raise
        finally:
            demo.cleanup()
    result["stopped_pids"] = sorted(demo.stopped)
    if keep:
        result["workdir"] = str(demo.root)
        result["database_url"] = demo.caller.store.url
    if not json_mode:
        print_summary(console, result)
    return result


class Demo:
    def __init__(self, console: Console, quiet: bool, keep: bool, rehearse: bool = False) -> None:
        self.timeline = Timeline(console, quiet)
        self.keep = keep
        self.rehearse = rehearse
        self.pids: set[int] = set()
        self.stopped: set[int] = set()
        self.traffic: Traffic | None = None
        self.saved_env = {name: os.environ.get(name) for name in (PORT_ENV, OWNER_ENV, INBOX_ENV)}
        self.inbox = Inbox()
        self.cleaned = False
        self.root = Path(tempfile.mkdtemp(prefix="backout-demo-")).resolve()
        self.caller = commands.Caller.of(
            Settings(database_url=f"sqlite:///{self.root}/.backout/backout.db")
        )
        self.port = 0
        self.fault_index = -1

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # --- the story -----------------------------------------------------------------------
    def play(self) -> dict[str, Any]:
        path = self._setup()
        plan = load_plan(path).plan
        self.fault_index = fault_step(plan)
        self._start_v1()
        STOP.check()
        snapshot = self._snapshot(path)
        STOP.check()
        self.timeline.add(f"deploying {RELEASE}: `backout deploy --release {RELEASE}`")
        with Courier(self.caller.store, self.caller.actor, flush=NOTIFY_FLUSH_S):
            report = commands.deploy(self.caller, path, release=RELEASE, observer=self._observe)
        self._remember_service()
        if report.result == "promoted":
            raise BackoutError(
                f"no trigger fired while {RELEASE} was watched: the deploy was promoted",
                hint="the machine may be too busy for the demo's traffic; try again",
            )
        found = moments(commands.journal(self.caller, report.run_id), self.fault_index)
        after = None
        if report.status == "succeeded" and report.verified and found.restored_at is not None:
            self._restored(found)
            after = self._error_rate_over(SETTLE_S, "after the backout")
        result = self._result(plan, report, snapshot, found, after)
        result["notifications"] = self.inbox.messages()
        result["notifications_refused"] = self.inbox.refused
        result["status_page"] = self._status_page()
        if self.keep:
            result["report"] = self._report(report.run_id)
        if self.rehearse and after is not None:
            result["rehearsal"] = self._rehearsal(path)
        return result

    def _status_page(self) -> str:
        """The status page as the run left it (`backout status-page build`)."""
        folder = self.root / "status-page"
        commands.status_page_build(self.caller, folder, title="Demo shop status")
        self.timeline.add(f"status page written: {folder / 'index.html'}")
        return str(folder)

    def _report(self, run_id: str) -> dict[str, str]:
        """The run's post-incident report draft (`backout report`), kept in the folder."""
        kept: tuple[Format, ...] = ("md", "html")
        written: dict[str, str] = {fmt: str(self.root / f"report.{fmt}") for fmt in kept}
        for fmt in kept:
            write_report(self.caller, run_id, fmt, written[fmt])
        self.timeline.add(f"post-incident report drafted: {written['md']}, {written['html']}")
        return written

    def _rehearsal(self, path: Path) -> dict[str, Any]:
        """The drill beat: the same plan rehearsed (break, detect, back out, verify,
        steady state), its evidence recorded, and the gate's rehearsal check read."""
        self.timeline.add("rehearsing the plan: `backout rehearse` (v2 is the break)")
        drill = commands.rehearse(self.caller, path, observer=self.timeline.observer)
        self._remember_service()
        timings = " · ".join(
            f"{name[:-2]} {value:.2f}s"
            for name, value in drill.phases.items()
            if name.endswith("_s") and isinstance(value, float | int)
        )
        verdict = "passed" if drill.passed else "FAILED"
        self.timeline.add(
            f"rehearsal {verdict}: {timings}", "bold green" if drill.passed else "bold red"
        )
        gate = gate_rehearsal(self.caller, path)
        self.timeline.add(f"gate, rehearsal check for a high-risk change: {gate}")
        return {
            "passed": drill.passed,
            "run_id": drill.run.run_id,
            "phases": drill.phases,
            "fits_rto": drill.fits_rto,
            "journal_hash": drill.journal_hash,
            "gate": gate,
        }

    def _setup(self) -> Path:
        self.inbox.__enter__()
        os.environ[INBOX_ENV] = str(self.inbox.port)  # the plan's notify channel reads it
        self.port = choose_port()
        os.environ[PORT_ENV] = str(self.port)  # the plan reads {{ env.BACKOUT_DEMO_PORT }}
        os.environ[OWNER_ENV] = str(os.getpid())  # services exit when this process is gone
        plan = layout(self.root)
        self.timeline.add(
            f"laid out {self.root}: releases v1 and v2, current -> v1, plan {plan.name}"
        )
        return plan

    def _start_v1(self) -> None:
        pid = restart(self.root, self.port)
        self.pids.add(pid)
        self.timeline.add(f"service v1 up on 127.0.0.1:{self.port} (pid {pid})")
        self.traffic = Traffic(self.url("/"))
        self.traffic.start()
        self.timeline.add(f"traffic started: ~{self.traffic.rate:g} requests/s on /")

    def _snapshot(self, plan: Path) -> SnapshotReport:
        report = commands.snapshot(self.caller, plan, telemetry_window=SNAPSHOT_WINDOW_S)
        shown = ", ".join(f"{k}={v[:12]}" for k, v in report.values.items())
        signals = "; ".join(
            f"{name}: {s['events']} of {s['trials']} requests failed"
            for name, s in report.telemetry.items()
        )
        self.timeline.add(
            f"baseline recorded (snapshot #{report.snapshot_id}): {shown}; "
            f"{signals} in {SNAPSHOT_WINDOW_S:g}s"
        )
        return report

    def _observe(self, event: Event, view: RunView) -> None:
        """The engine's observer: the timeline, and the moment the bad release went live."""
        self.timeline.observer(event, view)
        if went_live(event, self.fault_index):
            pids = self._pidfile()
            self.pids |= pids
            self.timeline.add(
                f"fault: {RELEASE} is live (pid {', '.join(map(str, pids)) or '?'}) and answers "
                f"500 to {RELEASES[RELEASE]:.0%} of requests",
                "bold red",
                at=event.at,
            )

    def _remember_service(self) -> None:
        self.pids |= self._pidfile()

    def _restored(self, found: Moments) -> None:
        self.timeline.add(
            f"restored: the good release is live, verified "
            f"{found.since_fault(found.restored_at):.2f}s after the fault began",
            "bold green",
            at=found.restored_at,
        )

    def _error_rate_over(self, seconds: float, label: str) -> float:
        """The share of 5xx responses users got over the next ``seconds``."""
        assert self.traffic is not None  # started before the deploy
        before, _ = self.traffic.counts()
        if STOP.wait(seconds):
            raise Stopped(STOP.signum)
        after, _ = self.traffic.counts()
        grown = after - before
        served = sum(grown.values())
        errors = sum(n for code, n in grown.items() if code >= 500)
        rate = errors / served if served else 0.0
        self.timeline.add(f"{label}: {rate:.1%} errors in {served} requests")
        return rate

    def _result(
        self,
        plan: Plan,
        report: RunReport,
        snapshot: SnapshotReport,
        found: Moments,
        after: float | None,
    ) -> dict[str, Any]:
        assert self.traffic is not None  # started before the deploy
        return {
            "outcome": report.status,
            "result": report.result,
            "verified": report.verified,
            "run_id": report.run_id,
            "message": report.message,
            "release": RELEASE,
            "detected_after_s": found.since_fault(found.detected_at),
            "restored_after_s": found.since_fault(found.restored_at),
            "trigger": trigger_of(report.trigger),
            "triggers": [t.name for t in plan.triggers],
            "baseline": snapshot.values,
            "baseline_telemetry": snapshot.telemetry,
            "error_rate_after": None if after is None else round(after, 4),
            "steps": [
                {"name": s.name, "phase": phase, "outcome": s.status, "duration_s": s.duration_s}
                for s, phase in zip(report.steps, phases(plan), strict=True)
            ],
            "checks": [
                {"name": c.name, "passed": c.passed, "reason": c.reason} for c in report.checks
            ],
            "traffic": self.traffic.summary(),
            "service_pids": sorted(self.pids),
            "timeline": self.timeline.to_json(),
            "duration_s": round(self.timeline.now(), 3),
        }

    # --- cleanup -------------------------------------------------------------------------
    def cleanup(self) -> None:
        """Stop traffic and every demo process; remove the folder unless ``keep``."""
        if self.cleaned:
            return
        self.cleaned = True
        with signals_ignored():
            if self.traffic is not None:
                self.traffic.stop()
            self.stopped = stop_all(self.root, self.pids | self._pidfile())
            self._restore_env()
            if self.inbox.port:
                self.inbox.__exit__()
            self.caller.store.dispose()
            if not self.keep:
                shutil.rmtree(self.root, ignore_errors=True)

    def _pidfile(self) -> set[int]:
        try:
            return {int((self.root / "run" / "service.pid").read_text())}
        except (OSError, ValueError):
            return set()

    def _restore_env(self) -> None:
        for name, value in self.saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --- signals ---------------------------------------------------------------------------
Handler = Callable[[int, FrameType | None], Any] | int | None


@contextmanager
def signals_ignored() -> Iterator[None]:
    """A second Ctrl-C during cleanup must not leave processes behind."""
    with _handlers({signal.SIGINT: signal.SIG_IGN, signal.SIGTERM: signal.SIG_IGN}):
        yield


@contextmanager
def _handlers(wanted: dict[signal.Signals, Handler]) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; its caller owns signals then
        return
    previous = {sig: signal.signal(sig, handler) for sig, handler in wanted.items()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
