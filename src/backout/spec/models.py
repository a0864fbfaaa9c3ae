"""Typed plan models. They know nothing of the engine; action options are validated by the
action registry after the plan itself (see ``spec.loader``)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from backout.spec.fields import (
    DEFAULT_CHECK_TIMEOUT,
    DEFAULT_STEP_TIMEOUT,
    NAME_PATTERN,
    Duration,
    Kinded,
    Model,
    Risk,
)
from backout.spec.notify_models import DisasterRecovery, Notify, StatusPage


class Roles(Model):
    lead: str | None = Field(None, description="Who runs the backout and decides under pressure.")
    approvers: list[str] = Field(default_factory=list, description="Who may approve the change.")


class Secret(Model):
    """Where a secret's value comes from; values are redacted everywhere they could appear."""

    env: str | None = Field(None, description="Read the value from this environment variable.")
    file: str | None = Field(
        None, description="Read the value from this file (relative to the plan)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> Secret:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of `env:` or `file:`")
        return self


class Step(Kinded):
    name: str = Field(min_length=1, description="What the step does, in the words of a runbook.")
    timeout: Duration = Field(DEFAULT_STEP_TIMEOUT, description="Time budget for one attempt.")
    retries: int = Field(0, ge=0, le=20, description="Extra attempts after a failure.")
    retry_delay: Duration = Field(
        1.0, description="Delay before the first retry; doubles each time."
    )
    idempotent: bool = Field(
        False, description="Safe to run twice: an interrupted attempt is re-run on resume."
    )
    on_failure: Literal["stop", "continue"] = Field(
        "stop", description="stop: the run fails here; continue: record it and go on."
    )


class VerifyCheck(Kinded):
    name: str = Field(min_length=1, description="What 'restored' means, in one line.")
    within: Duration = Field(0.0, description="Keep retrying the check for up to this long.")
    interval: Duration = Field(1.0, description="Delay between attempts inside `within`.")
    timeout: Duration = Field(DEFAULT_CHECK_TIMEOUT, description="Time budget for one attempt.")


class BaselineSource(Kinded):
    """A baseline value: how to read it before a deploy."""


class Signal(Kinded):
    """A ``telemetry:`` entry: how to read one signal (``scrape:``, ``prometheus:`` …)."""

    interval: Duration | None = Field(
        None, description="How often to read it (default: the source's, 1s for scrape/probe)."
    )
    timeout: Duration = Field(5.0, description="Time budget for one read.")


class Trigger(Kinded):
    """A ``triggers:`` entry: when to back out (``threshold:``, ``sequential:`` …)."""

    name: str = Field(min_length=1, description="What the trigger watches for, in one line.")
    signal: str | None = Field(None, description="The `telemetry:` signal it reads.")
    on_no_data: Literal["backout", "pause", "ignore"] = Field(
        "pause",
        description="When the signal has no data: back out, hold the checkpoint, or carry on.",
    )


class DeployStep(Step):
    """A forward step of a deploy stage; ``undo:`` overrides the action's own reverse."""

    undo: dict[str, Any] | None = Field(
        None, description="An action that reverses this step, e.g. {run: [./bin/undo]}."
    )


class Stage(Model):
    name: str = Field(min_length=1, description="What this stage does, e.g. 'canary 5%'.")
    steps: list[DeployStep] = Field(default_factory=list, description="Forward steps.")
    hold: Duration = Field(0.0, description="Checkpoint: watch the triggers this long.")
    approve: bool = Field(False, description="Checkpoint: wait for `backout approve RUN_ID`.")


class Deploy(Model):
    strategy: Literal["direct", "blue-green", "canary", "flag"] = Field(
        "direct", description="How traffic moves to the new release."
    )
    stages: list[Stage] = Field(min_length=1, description="In order; each ends in a checkpoint.")


class FaultSpec(Kinded):
    """A ``rehearsal.faults`` entry: a fault injected into the backout (``fail_first:`` …)."""


class Rehearsal(Model):
    """How ``backout rehearse`` drills this plan: what breaks the service the way a bad
    release would, how long the triggers have to notice, and what to inject into the
    backout itself."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)

    break_: list[DeployStep] = Field(
        default_factory=list,
        alias="break",
        description="Steps that break the service as a bad release would; each `undo:` "
        "restores it if the drill's backout does not.",
    )
    detect_within: Duration = Field(
        60.0, description="How long the triggers have to fire once the service is broken."
    )
    faults: list[FaultSpec] = Field(
        default_factory=list, description="Faults injected into the backout (fail_first, slow…)."
    )


class Plan(Model):
    plan: str = Field(pattern=NAME_PATTERN, description="Unique plan name.")
    service: str = Field("", description="One active run per service; defaults to the plan name.")
    owner: str | None = Field(None, description="Team that owns the plan.")
    risk: Risk = Field("medium", description="low | medium | high | critical")
    rto: Duration | None = Field(None, description="Time budget for the whole backout.")
    roles: Roles = Field(default_factory=Roles)
    secrets: dict[str, Secret] = Field(default_factory=dict)
    baseline: dict[str, BaselineSource] = Field(
        default_factory=dict, description="Last-known-good values captured by `backout snapshot`."
    )
    steps: list[Step] = Field(min_length=1, description="The backout, in order.")
    verify: list[VerifyCheck] = Field(default_factory=list, description="Checked after the steps.")
    telemetry: dict[str, Signal] = Field(default_factory=dict, description="Named signals.")
    triggers: list[Trigger] = Field(default_factory=list, description="When to back out.")
    deploy: Deploy | None = Field(None, description="A progressive deploy with checkpoints.")
    rehearsal: Rehearsal | None = Field(None, description="How `backout rehearse` drills it.")
    notify: Notify | None = Field(None, description="Who is told what, through which channels.")
    disaster_recovery: DisasterRecovery | None = Field(
        None, description="The hand-off when the backout itself fails."
    )
    status_page: StatusPage | None = Field(
        None, description="Its component and incidents on the status page (`status-page build`)."
    )
    environments: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Per-environment values templates read as `environment.KEY`, chosen "
        "with --env (e.g. staging, production).",
    )

    @field_validator("environments")
    @classmethod
    def _environment_names(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for name, values in value.items():
            if not re.match(NAME_PATTERN, name):
                raise ValueError(f"environment {name!r}: use letters, digits, '.', '_' or '-'")
            for key in values:
                if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key) or key == "name":
                    raise ValueError(
                        f"environments.{name}.{key}: keys are identifiers, and `name` is "
                        "the environment's own name"
                    )
        return value

    @field_validator("service")
    @classmethod
    def _service_name(cls, value: str) -> str:
        if value and not re.match(NAME_PATTERN, value):
            raise ValueError("use letters, digits, '.', '_' or '-'")
        return value

    @field_validator("baseline", "secrets", "telemetry")
    @classmethod
    def _key_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise ValueError(f"{key!r} must be an identifier (letters, digits, '_')")
        return value

    @model_validator(mode="after")
    def _dr_pages_known_channels(self) -> Plan:
        dr = self.disaster_recovery
        declared = self.notify.channels if self.notify else {}
        for name in dr.page if dr else []:
            if name not in declared:
                known = ", ".join(declared) or "no notify.channels declared"
                raise ValueError(f"disaster_recovery.page: no channel named {name!r} ({known})")
        return self

    @property
    def service_name(self) -> str:
        return self.service or self.plan

    def service_key(self, environment: str | None) -> str:
        """The service as leases, snapshots, triggers and runs key it: one per environment
        (``shop@staging``), so a drill in staging never touches production's lease or
        baseline."""
        return f"{self.service_name}@{environment}" if environment else self.service_name


__all__ = [
    "DEFAULT_CHECK_TIMEOUT",
    "DEFAULT_STEP_TIMEOUT",
    "NAME_PATTERN",
    "BaselineSource",
    "Deploy",
    "DeployStep",
    "DisasterRecovery",
    "Duration",
    "FaultSpec",
    "Kinded",
    "Model",
    "Notify",
    "Plan",
    "Rehearsal",
    "Risk",
    "Roles",
    "Secret",
    "Signal",
    "Stage",
    "StatusPage",
    "Step",
    "Trigger",
    "VerifyCheck",
]
