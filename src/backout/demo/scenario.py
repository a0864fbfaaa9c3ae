"""``backout demo``: a bad release is detected from its own metrics, backed out by a real
plan through the durable engine, and verified, all in a temporary folder.

Order of events: v1 up · traffic · baseline snapshot · deploy v2 (the fault) · detection ·
``commands.run`` (steps, verification) · traffic after the backout · cleanup.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from rich.console import Console

from backout import commands
from backout.demo.detect import Reading, Rule, Sample, evaluate, parse_counts, read_window
from backout.demo.processes import (
    OWNER_ENV,
    PORT_ENV,
    choose_port,
    restart,
    stop_all,
    wait_for_release,
)
from backout.demo.summary import print_summary
from backout.demo.timeline import Timeline
from backout.demo.traffic import Traffic
from backout.demo.workdir import RELEASES, layout, switch_release
from backout.errors import BackoutError
from backout.reports import RunReport
from backout.settings import Settings

RULE = Rule(threshold=0.10, window_s=2.0, min_requests=20)
SCRAPE_INTERVAL_S = 0.1
WARMUP_S = 1.0  # watch v1 this long before the deploy
SETTLE_S = 1.0  # and the restored release this long after the backout
DETECT_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Detection:
    """The reading that triggered the backout; times are seconds on the timeline."""

    reading: Reading
    fault_at: float
    detected_at: float


def run_demo(json_mode: bool, keep: bool, console: Console) -> dict[str, Any]:
    """Play the demo; return its result (``outcome`` is the backout run's status)."""
    demo = Demo(console, quiet=json_mode, keep=keep)
    with unwind_on_signals():
        try:
            result = demo.play()
        except KeyboardInterrupt:
            demo.cleanup()
            kept = f"; kept {demo.root}" if keep else ", folder removed (nothing to resume)"
            console.print(f"demo interrupted: {len(demo.stopped)} process(es) stopped{kept}")
            raise
        finally:
            demo.cleanup()
    result["stopped_pids"] = sorted(demo.stopped)
    if keep:
        result["workdir"] = str(demo.root)
        result["database_url"] = demo.settings.database_url
    if not json_mode:
        print_summary(console, result)
    return result


class Demo:
    def __init__(self, console: Console, quiet: bool, keep: bool) -> None:
        self.timeline = Timeline(console, quiet)
        self.keep = keep
        self.pids: set[int] = set()
        self.stopped: set[int] = set()
        self.traffic: Traffic | None = None
        self.saved_env = {name: os.environ.get(name) for name in (PORT_ENV, OWNER_ENV)}
        self.cleaned = False
        self.root = Path(tempfile.mkdtemp(prefix="backout-demo-")).resolve()
        self.settings = Settings(database_url=f"sqlite:///{self.root}/.backout/backout.db")
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # --- the story -----------------------------------------------------------------------
    def play(self) -> dict[str, Any]:
        plan = self._setup()
        self._start_v1()
        baseline = self._snapshot(plan)
        self._observe(WARMUP_S, "v1 before the deploy")
        detection = self._detect(self._deploy_v2())
        report = commands.run(self.settings, plan, observer=self.timeline.observer)
        self._remember_service()
        restored_at = self._restored(report, detection.fault_at)
        after = self._observe(SETTLE_S, "after the backout") if restored_at else None
        return self._result(report, baseline, detection, restored_at, after)

    def _setup(self) -> Path:
        self.port = choose_port()
        os.environ[PORT_ENV] = str(self.port)  # the plan reads {{ env.BACKOUT_DEMO_PORT }}
        os.environ[OWNER_ENV] = str(os.getpid())  # services exit when this process is gone
        plan = layout(self.root)
        self.timeline.add(
            f"laid out {self.root}: releases v1 and v2, current -> v1, plan {plan.name}"
        )
        return plan

    def _start_v1(self) -> None:
        pid = self._restart_as("v1")
        self.timeline.add(f"service v1 up on 127.0.0.1:{self.port} (pid {pid})")
        self.traffic = Traffic(self.url("/"))
        self.traffic.start()
        self.timeline.add(f"traffic started: ~{self.traffic.rate:g} requests/s on /")

    def _restart_as(self, release: str) -> int:
        pid = restart(self.root, self.port)
        self.pids.add(pid)
        wait_for_release(self.root, self.port, pid, release)
        return pid

    def _snapshot(self, plan: Path) -> dict[str, str]:
        report = commands.snapshot(self.settings, plan)
        shown = ", ".join(f"{k}={v[:12]}" for k, v in report.values.items())
        self.timeline.add(f"baseline recorded (snapshot #{report.snapshot_id}): {shown}")
        return report.values

    def _deploy_v2(self) -> float:
        self.timeline.add("deploying v2: current -> v2, restart")
        switch_release(self.root, "v2")
        pid = self._restart_as("v2")
        share = RELEASES["v2"]
        return self.timeline.add(
            f"fault: v2 is live (pid {pid}) and answers 500 to {share:.0%} of requests", "bold red"
        )

    def _detect(self, fault_at: float) -> Detection:
        """Scrape /metrics until the rule breaches; v2's counters started at zero."""
        samples = [Sample(self.timeline.started + fault_at, 0.0, 0.0)]
        deadline = time.monotonic() + DETECT_TIMEOUT_S
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                time.sleep(SCRAPE_INTERVAL_S)
                samples += self._scrape(client)
                reading, breach = evaluate(samples, RULE)
                if breach:
                    return Detection(reading, fault_at, self._detected(reading))
        raise BackoutError(
            f"v2 served for {DETECT_TIMEOUT_S:g}s without breaching the error threshold",
            hint="the machine may be too busy for the demo's traffic; try again",
        )

    def _detected(self, reading: Reading) -> float:
        return self.timeline.add(
            f"detected: {reading.error_share:.1%} of the last {reading.requests:g} requests "
            f"failed (window {RULE.window_s:g}s, threshold {RULE.threshold:.0%}): backing out",
            "bold yellow",
        )

    def _scrape(self, client: httpx.Client) -> list[Sample]:
        try:
            requests, errors = parse_counts(client.get(self.url("/metrics")).text)
        except (httpx.HTTPError, ValueError):
            return []  # a scrape that fails is a gap, not a verdict
        return [Sample(time.monotonic(), requests, errors)]

    def _observe(self, seconds: float, label: str) -> Reading:
        samples: list[Sample] = []
        stop_at = time.monotonic() + seconds
        with httpx.Client(timeout=1.0) as client:
            while True:
                samples += self._scrape(client)
                if time.monotonic() >= stop_at:
                    break
                time.sleep(SCRAPE_INTERVAL_S)
        reading = read_window(samples, seconds)
        self.timeline.add(
            f"{label}: {reading.error_share:.1%} errors in {reading.requests:g} requests"
        )
        return reading

    def _remember_service(self) -> None:
        self.pids |= self._pidfile()

    def _restored(self, report: RunReport, fault_at: float) -> float | None:
        finished = self.timeline.finished_at
        if report.status != "succeeded" or not report.verified or finished is None:
            return None
        self.timeline.add(
            f"restored: the good release is live, verified {finished - fault_at:.2f}s "
            "after the fault began",
            "bold green",
        )
        return finished

    def _result(
        self,
        report: RunReport,
        baseline: dict[str, str],
        detection: Detection,
        restored_at: float | None,
        after: Reading | None,
    ) -> dict[str, Any]:
        assert self.traffic is not None  # started before the deploy
        fault_at, reading = detection.fault_at, detection.reading
        return {
            "outcome": report.status,
            "verified": report.verified,
            "run_id": report.run_id,
            "message": report.message,
            "detected_after_s": round(detection.detected_at - fault_at, 3),
            "restored_after_s": None if restored_at is None else round(restored_at - fault_at, 3),
            "error_rate_at_trigger": round(reading.error_share, 4),
            "requests_in_window": int(reading.requests),
            "threshold": RULE.threshold,
            "window_s": RULE.window_s,
            "min_requests": RULE.min_requests,
            "error_rate_after": None if after is None else round(after.error_share, 4),
            "baseline": baseline,
            "steps": [
                {"name": s.name, "outcome": s.status, "duration_s": s.duration_s}
                for s in report.steps
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
def unwind_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP unwind the stack like Ctrl-C does, so ``finally`` cleans up."""
    with _handlers({signal.SIGTERM: _exit_on_signal, signal.SIGHUP: _exit_on_signal}):
        yield


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


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)
