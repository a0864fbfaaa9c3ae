"""``wait:`` — a fixed delay, or poll until an HTTP or command check passes."""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field, model_validator

from backout.actions.base import Action, Outcome
from backout.kernel.options import Context, Options
from backout.probes.base import Verdict
from backout.probes.command import CommandCheck, CommandOptions
from backout.probes.http import HttpCheck, HttpCheckOptions
from backout.proc import SPAWN_HOOK
from backout.spec.models import Duration
from backout.stop import STOP


class WaitOptions(Options):
    delay: Duration | None = Field(None, description="Sleep this long.")
    http: HttpCheckOptions | None = Field(None, description="Poll until this HTTP check passes.")
    command: CommandOptions | None = Field(None, description="Poll until this command passes.")
    interval: Duration = Field(0.5, description="Delay between polls.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"delay": value} if isinstance(value, str | int | float) else value

    @model_validator(mode="after")
    def _one_mode(self) -> WaitOptions:
        modes = [m for m in (self.delay, self.http, self.command) if m is not None]
        if len(modes) != 1:
            raise ValueError("give exactly one of delay, http or command")
        return self


class WaitAction(Action):
    kind = "wait"
    Options = WaitOptions
    changes_state = False  # waiting leaves nothing to undo

    def execute(self, options: WaitOptions, ctx: Context) -> Outcome:
        if options.delay is not None:
            if options.delay > ctx.timeout:
                return Outcome(False, f"delay {options.delay:g}s exceeds timeout {ctx.timeout:g}s")
            STOP.sleep(options.delay)
            return Outcome(True, f"waited {options.delay:g}s")
        return self._poll(options, ctx)

    def _poll(self, options: WaitOptions, ctx: Context) -> Outcome:
        # the probes only look, and die with the executor anyway: journalling each poll's
        # process would add an event per poll for nothing
        token = SPAWN_HOOK.set(None)
        try:
            return self._polls(options, ctx)
        finally:
            SPAWN_HOOK.reset(token)

    def _polls(self, options: WaitOptions, ctx: Context) -> Outcome:
        deadline = time.monotonic() + ctx.timeout
        polls, reason = 0, ""
        while True:
            polls += 1
            remaining = max(0.1, deadline - time.monotonic())
            verdict = self._probe(options, _ctx(ctx, remaining))
            if verdict.passed:
                return Outcome(True, f"passed after {polls} poll(s): {verdict.reason}")
            reason = verdict.reason
            if time.monotonic() + options.interval >= deadline:
                return Outcome(False, f"still failing after {polls} poll(s): {reason}")
            STOP.sleep(options.interval)

    @staticmethod
    def _probe(options: WaitOptions, ctx: Context) -> Verdict:
        if options.http is not None:
            return HttpCheck().check(options.http, ctx)
        assert options.command is not None  # the model allows exactly one mode
        return CommandCheck().check(options.command, ctx)

    def describe(self, options: WaitOptions) -> str:
        if options.delay is not None:
            return f"wait {options.delay:g}s"
        target = (
            HttpCheck().describe(options.http)
            if options.http
            else (CommandCheck().describe(options.command) if options.command else "")
        )
        return f"wait until {target}"


def _ctx(ctx: Context, timeout: float) -> Context:
    return Context(ctx.workdir, min(timeout, 10.0), ctx.env, ctx.redact)
