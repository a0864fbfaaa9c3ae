"""Typed plan models. They know nothing of the engine; action options are validated by the
action registry after the plan itself (see ``spec.loader``)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from backout.kernel.durations import parse_duration
from backout.kernel.events import NOTIFY_EVENTS

DURATION_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"},
        {"type": "number", "minimum": 0},
    ],
    "description": "A duration: 500ms, 10s, 2m, 1h, or a number of seconds.",
}
Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(DURATION_SCHEMA)]
Risk = Literal["low", "medium", "high", "critical"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

DEFAULT_STEP_TIMEOUT = 60.0
DEFAULT_CHECK_TIMEOUT = 10.0
MAX_RETRY_DELAY = 30.0  # the engine caps the doubling retry backoff here


class Model(BaseModel):
    """Base for plan models: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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


class Kinded(Model):
    """A mapping with exactly one *kind* key (``run:``, ``http:`` …) plus common fields.

    The loader moves the kind key into ``kind`` and its value into ``options`` before
    validation, so the models stay closed (``extra="forbid"``) and errors stay precise.
    """

    kind: str = Field(description="Which action, check or source this is (the key used in YAML).")
    options: Any = Field(description="The kind's own options, validated by its registry.")


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

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

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


class NotifyChannel(Kinded):
    """One destination: a channel kind (slack, pagerduty, teams, webhook, email …) with its
    options. Option values may be templates reading ``secrets`` and ``environment``
    (``"{{ secrets.slack_webhook }}"``); they are rendered when a message is sent."""


class NotifyRoute(Model):
    events: list[str] = Field(
        min_length=1, description="Notify events to send (`backout notify events`), or `*`."
    )
    to: list[str] = Field(min_length=1, description="Names of `notify.channels` to send them to.")
    environments: list[str] | None = Field(
        None, description="Only for runs in these environments (e.g. page only in production)."
    )

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        unknown = [e for e in value if e != "*" and e not in NOTIFY_EVENTS]
        if unknown:
            raise ValueError(
                f"unknown notify event {unknown[0]!r}; expected `*` or one of "
                + ", ".join(NOTIFY_EVENTS)
            )
        return value


class EscalationLevel(Model):
    after: Duration = Field(
        description="How long the run may wait unacknowledged before this level is told."
    )
    roles: list[str] = Field(min_length=1, description="Roles of `notify.contacts` to call on.")
    to: list[str] = Field(min_length=1, description="Channels to tell them through.")


class UpdateCadence(Model):
    role: str = Field(description="The role of `notify.contacts` that posts updates (comms).")
    to: list[str] = Field(min_length=1, description="Channels the reminders go to.")
    first_within: Duration = Field(
        300.0, description="The first update is due this long after the trigger fired."
    )
    every: Duration | None = Field(
        None, description="Then one is due this long after the last, until the run is resolved."
    )


class Notify(Model):
    channels: dict[str, NotifyChannel] = Field(
        default_factory=dict, description="Named destinations, each one channel kind."
    )
    routes: list[NotifyRoute] = Field(
        default_factory=list, description="Which events go to which channels."
    )
    messages: dict[str, str] = Field(
        default_factory=dict,
        description="Per notify event, a template replacing the built-in message text.",
    )
    links: dict[str, str] = Field(
        default_factory=dict,
        description="Links every message carries, label -> URL (a dashboard, the status page).",
    )
    contacts: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Role -> channel -> who to mention there (a Slack <@U…>, an email login).",
    )
    escalation: list[EscalationLevel] = Field(
        default_factory=list,
        description="Who is called on, and when, while a run waits for a person and nobody "
        "has run `backout ack`.",
    )
    updates: UpdateCadence | None = Field(
        None, description="Remind the comms role to post updates (`backout notify update`)."
    )

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, value: dict[str, NotifyChannel]) -> dict[str, NotifyChannel]:
        for name in value:
            if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_-]*$", name):  # no '.': delivery keys
                raise ValueError(f"channel {name!r}: use letters, digits, '_' or '-'")
        return value

    @field_validator("messages")
    @classmethod
    def _message_events(cls, value: dict[str, str]) -> dict[str, str]:
        for event in value:
            if event not in NOTIFY_EVENTS:
                raise ValueError(
                    f"messages.{event}: not a notify event; expected one of "
                    + ", ".join(NOTIFY_EVENTS)
                )
        return value

    @model_validator(mode="after")
    def _names_are_declared(self) -> Notify:
        known = ", ".join(self.channels) or "none declared"
        places = [(f"routes[{i}].to", r.to) for i, r in enumerate(self.routes)]
        places += [(f"escalation[{i}].to", e.to) for i, e in enumerate(self.escalation)]
        places += [("updates.to", self.updates.to)] if self.updates else []
        places += [(f"contacts.{role}", list(c)) for role, c in self.contacts.items()]
        for where, names in places:
            for name in names:
                if name not in self.channels:
                    raise ValueError(
                        f"{where}: no channel named {name!r} in notify.channels (declared: {known})"
                    )
        roles = ", ".join(self.contacts) or "none declared"
        wanted = [(f"escalation[{i}].roles", e.roles) for i, e in enumerate(self.escalation)]
        wanted += [("updates.role", [self.updates.role])] if self.updates else []
        for where, names in wanted:
            for name in names:
                if name not in self.contacts:
                    raise ValueError(
                        f"{where}: no role {name!r} in notify.contacts (declared: {roles})"
                    )
        return self


class StatusPage(Model):
    """How the service appears on the status page (``backout status-page build``): its
    component, and how long a recovered incident stays in monitoring."""

    component: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="The component's name on the page (default: the service, shown as "
        "`shop` or `shop (production)`).",
    )
    group: str | None = Field(
        None, min_length=1, max_length=200, description="The component group it is shown in."
    )
    internal: bool = Field(
        False,
        description="Never published: its component, incidents and updates stay off the "
        "page, the JSON and the feed (`backout incident list` still shows them).",
    )
    quiet: Duration = Field(
        1800.0,
        description="A monitoring incident with no new update for this long is resolved.",
    )
    description: str | None = Field(
        None, max_length=500, description="A line shown with the component on the page."
    )


class DisasterRecovery(Model):
    """Who takes over when the way back itself fails, and with what."""

    owner: str = Field(
        min_length=1,
        description="Who owns disaster recovery: a role of notify.contacts, or a name.",
    )
    runbook: str | None = Field(None, description="A link to the disaster-recovery runbook.")
    plan: str | None = Field(
        None, description="A backout plan file that recovers (relative to this plan)."
    )
    auto: bool = Field(
        False,
        description="Start `plan` at once when the backout fails, if its own gate passes "
        "(it validates, and a drill is not due).",
    )
    page: list[str] = Field(
        default_factory=list,
        description="Channels of notify.channels told of the hand-off (the owner mentioned).",
    )

    @model_validator(mode="after")
    def _auto_needs_a_plan(self) -> DisasterRecovery:
        if self.auto and not self.plan:
            raise ValueError("`auto: true` starts `plan:`; name the recovery plan file")
        return self


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
