"""The built-in faults: a step whose first attempt fails, a slowed step, a failing check."""

from __future__ import annotations

import os
import signal
from typing import ClassVar, Literal

from pydantic import Field

from backout.actions.base import Outcome
from backout.faults.base import Fault, FaultContext, FaultOptions
from backout.kernel.durations import format_duration
from backout.probes.base import Verdict
from backout.spec.models import Duration
from backout.store.dialect import application_name
from backout.telemetry.base import Reading, Status


class StepOptions(FaultOptions):
    step: str = Field(min_length=1, description="The name of a backout step.")


class SlowOptions(StepOptions):
    by: Duration = Field(description="How long each attempt is held before it runs.")


class SignalOptions(FaultOptions):
    signal: str = Field(min_length=1, description="The name of a `telemetry:` signal.")


class CheckOptions(FaultOptions):
    check: str = Field(min_length=1, description="The name of a verify check.")


class FailFirst(Fault):
    """The step's first attempt fails without running: exercises `retries` and
    `on_failure`."""

    kind = "fail_first"
    Options = StepOptions

    def on_step(self, options: StepOptions, step: str, attempt: int) -> Outcome | None:
        if step == options.step and attempt == 1:
            return Outcome(False, "injected fault: the first attempt fails")
        return None

    def targets(self, options: StepOptions) -> dict[str, str]:
        return {"step": options.step}

    def describe(self, options: StepOptions) -> str:
        return f"the first attempt of {options.step!r} fails"


class Slow(Fault):
    """The step is held before each attempt: exercises its timeout and the rto."""

    kind = "slow"
    Options = SlowOptions

    def delay(self, options: SlowOptions, step: str) -> float:
        return options.by if step == options.step else 0.0

    def targets(self, options: SlowOptions) -> dict[str, str]:
        return {"step": options.step}

    def describe(self, options: SlowOptions) -> str:
        return f"{options.step!r} is slowed by {format_duration(options.by)}"


class FailCheck(Fault):
    """The verify check fails whatever it sees: exercises the failed-backout path."""

    kind = "fail_check"
    Options = CheckOptions

    def on_check(self, options: CheckOptions, check: str) -> Verdict | None:
        if check == options.check:
            return Verdict(False, "injected fault: the check fails")
        return None

    def targets(self, options: CheckOptions) -> dict[str, str]:
        return {"check": options.check}

    def describe(self, options: CheckOptions) -> str:
        return f"the check {options.check!r} fails"


class Kill(Fault):
    """The executor is killed with SIGKILL inside the step's first attempt, the way the OOM
    killer does it; the drill resumes the run from its journal: exercises resume, and
    shows what an interrupted non-idempotent step asks of the operator."""

    kind = "kill"
    Options = StepOptions
    kills_executor = True

    def kills(self, options: StepOptions, step: str, attempt: int) -> bool:
        return step == options.step and attempt == 1

    def targets(self, options: StepOptions) -> dict[str, str]:
        return {"step": options.step}

    def describe(self, options: StepOptions) -> str:
        return f"the executor is killed (SIGKILL) inside {options.step!r}"


class NoData(Fault):
    """The signal reads nothing while the triggers watch (a scrape target gone, a query
    with no series): exercises each trigger's `on_no_data`."""

    kind = "no_data"
    Options = SignalOptions
    status: ClassVar[Status] = "no_data"

    def on_reading(self, options: SignalOptions, signal: str, reading: Reading) -> Reading | None:
        if signal != options.signal:
            return None
        return Reading(at=reading.at, status=self.status, detail=f"injected fault: {self.kind}")

    def targets(self, options: SignalOptions) -> dict[str, str]:
        return {"signal": options.signal}

    def describe(self, options: SignalOptions) -> str:
        return f"the signal {options.signal!r} reads no data"


class TelemetryError(NoData):
    """The signal's source errors while the triggers watch (Prometheus down, a probe
    failing): exercises each trigger's `on_no_data` the way a broken source does."""

    kind = "telemetry_error"
    status: ClassVar[Status] = "error"

    def describe(self, options: SignalOptions) -> str:
        return f"the signal {options.signal!r} errors"


class KillProcessOptions(FaultOptions):
    pidfile: str = Field(
        min_length=1, description="A file holding the pid (relative to the plan's folder)."
    )
    before: str = Field(min_length=1, description="The backout step it acts before.")
    signal: Literal["KILL", "TERM", "INT"] = Field("KILL", description="The signal to send.")


class KillProcess(Fault):
    """The service's process (its pid in ``pidfile``) is killed just before a backout step
    runs: exercises a backout that must bring the service up from nothing."""

    kind = "kill_process"
    Options = KillProcessOptions

    def before(
        self, options: KillProcessOptions, step: str, attempt: int, ctx: FaultContext
    ) -> str | None:
        if step != options.before or attempt != 1:
            return None
        path = ctx.workdir / options.pidfile
        try:
            pid = int(path.read_text().strip())
        except (OSError, ValueError) as exc:
            return f"no process to kill: {path}: {exc}"
        try:
            os.kill(pid, getattr(signal, f"SIG{options.signal}"))
        except ProcessLookupError:
            return f"pid {pid} from {options.pidfile} was already gone"
        return f"sent SIG{options.signal} to pid {pid} (from {options.pidfile})"

    def targets(self, options: KillProcessOptions) -> dict[str, str]:
        return {"step": options.before}

    def describe(self, options: KillProcessOptions) -> str:
        return (
            f"the process in {options.pidfile} gets SIG{options.signal} before {options.before!r}"
        )


class BeforeOptions(FaultOptions):
    before: str = Field(min_length=1, description="The backout step it acts before.")


class StoreDrop(Fault):
    """The store's connections are dropped just before a backout step: on PostgreSQL the
    server terminates every connection this executor holds (``pg_terminate_backend``), as
    a failover or a restarted database would. The engine must carry on (or stop cleanly
    for `backout resume`); the journal must stay whole."""

    kind = "store_drop"
    Options = BeforeOptions

    def before(
        self, options: BeforeOptions, step: str, attempt: int, ctx: FaultContext
    ) -> str | None:
        if step != options.before or attempt != 1:
            return None
        url = ctx.store_url or ""
        if not url.startswith(("postgresql", "postgres")):
            return "the store is SQLite: it has no connection to drop"
        import psycopg  # the PostgreSQL driver, only when this fault acts

        dsn = "postgresql://" + url.split("://", 1)[1]
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as admin:
            row = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                (application_name(),),
            ).fetchone()
        return f"dropped {row[0] if row else 0} store connection(s) of this executor"

    def targets(self, options: BeforeOptions) -> dict[str, str]:
        return {"step": options.before}

    def describe(self, options: BeforeOptions) -> str:
        return f"the store's connections drop before {options.before!r}"
