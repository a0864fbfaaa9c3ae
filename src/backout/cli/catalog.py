"""Every ``backout`` command: its name, the module that defines it, and its short help.

The root group (:class:`~backout.cli.base.BackoutGroup`) lists the commands from this table
and imports a command's module only when that command runs or its own ``--help`` is asked
for, so ``backout --version``, ``backout --help`` and ``backout validate`` do not load the
store, the engine or the web libraries. A command goes in here when it is added to a
module's ``COMMANDS``; tests/unit/test_cli_catalog.py fails until it is, and whenever the
short help here differs from the command's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple


class Entry(NamedTuple):
    module: str  # defines the command, in its ``COMMANDS`` list
    help: str  # the command's short help, as ``get_short_help_str`` gives it unshortened


CATALOG: Mapping[str, Entry] = MappingProxyType(
    {
        "abandon": Entry(
            "backout.cli.abandon",
            "Release a run stuck in needs_attention: it ends failed (result abandoned), its "
            "service is free for a new run, and no worker resumes it.",
        ),
        "ack": Entry(
            "backout.cli.notify",
            "Take a run that waits for a person: escalation stops, the channels routed "
            "`run.acknowledged` are told (PagerDuty acknowledges), and who took it is audited.",
        ),
        "approve": Entry("backout.cli.deploy", "Approve the checkpoint a deploy is waiting at."),
        "audit": Entry("backout.cli.audit", "The tamper-evident audit trail."),
        "change": Entry(
            "backout.cli.changes",
            "Change records: create, approve, track a change and its backout.",
        ),
        "completion": Entry(
            "backout.cli.completion",
            "Print the completion script for SHELL; load it from your shell's start-up file:",
        ),
        "config": Entry(
            "backout.cli.config",
            "Show the effective settings (store, actor, lease ttl, heartbeat, notify defaults) "
            "and where each came from: an option, an environment variable, the configuration "
            "file, or the default.",
        ),
        "demo": Entry(
            "backout.cli.runs",
            "Watch a bad release get detected, backed out and verified (self-contained).",
        ),
        "deploy": Entry(
            "backout.cli.deploy",
            "Deploy stage by stage, watching triggers at every checkpoint; back out if one fires.",
        ),
        "drills": Entry(
            "backout.cli.rehearsals", "Which plans need a drill (for a nightly CI job)."
        ),
        "explain": Entry(
            "backout.cli.deploy",
            "Why a run backed out (or was promoted): triggers, evidence, what was undone.",
        ),
        "flags": Entry(
            "backout.cli.flags",
            "Feature flags in the backout store, served to apps over OpenFeature's OFREP.",
        ),
        "gate": Entry(
            "backout.cli.changes",
            "Exit 0 when the change may start, 1 when any policy check fails (for CI).",
        ),
        "incident": Entry(
            "backout.cli.incidents",
            "Incidents on the status page: post an update by hand, list them.",
        ),
        "init": Entry("backout.cli.plans", "Write a commented starter plan."),
        "journal": Entry("backout.cli.runs", "Print a run's journal: every event, in order."),
        "metrics": Entry(
            "backout.cli.metrics",
            "Deployments, change failure rate, recovery and backout times, DORA levels.",
        ),
        "notify": Entry(
            "backout.cli.notify",
            "Notifications: which events a plan's `notify:` routes, test messages, delivery.",
        ),
        "outbox": Entry(
            "backout.cli.audit",
            "Outbound events: change records queued for the ITSM tool (route `itsm`).",
        ),
        "policy": Entry(
            "backout.cli.policy",
            "The change policy (backout-policy.yaml): what a change needs, per risk level.",
        ),
        "preflight": Entry(
            "backout.cli.preflight",
            "Prove that PLAN's migrations reverse: for each `alembic` and `sql_migration` step, "
            "apply up, down, up on a database made for the purpose (dropped afterwards, also "
            "after a failure or Ctrl-C), and compare the schema after the down with the one "
            "before the up.",
        ),
        "rehearsals": Entry(
            "backout.cli.rehearsals",
            "List recorded rehearsals, newest first (the evidence the gate reads).",
        ),
        "rehearse": Entry(
            "backout.cli.rehearsals",
            "Drill the plan's backout (in staging): break, detect, back out, verify, time it.",
        ),
        "report": Entry(
            "backout.cli.report",
            "Draft the post-incident report of run RUN_ID (or check one with --check FILE).",
        ),
        "resume": Entry(
            "backout.cli.runs", "Continue a run after a crash; finished steps are never run again."
        ),
        "run": Entry("backout.cli.runs", "Execute the plan's backout now."),
        "runs": Entry("backout.cli.runs", "List runs, newest first; the filters are combined."),
        "schema": Entry(
            "backout.cli.plans", "Print the plan's JSON Schema (for editor completion)."
        ),
        "server": Entry(
            "backout.cli.server",
            "Serve the REST API: runs, live events, trigger, approve, resume, abandon; API tokens.",
        ),
        "show": Entry("backout.cli.plans", "Render the plan as a Markdown runbook."),
        "snapshot": Entry(
            "backout.cli.runs",
            "Record the plan's baseline values (the last known good state) in the store.",
        ),
        "snapshots": Entry(
            "backout.cli.snapshots",
            "List the baselines recorded for SERVICE, newest first (the first is the one a new "
            "run uses).",
        ),
        "status": Entry(
            "backout.cli.runs",
            "Show a run's steps, durations and outcome (exit code follows the outcome).",
        ),
        "status-page": Entry(
            "backout.cli.incidents",
            "The public status page: a static page, status.json and an Atom feed.",
        ),
        "token": Entry(
            "backout.cli.tokens",
            "API tokens: each acts as one actor with one role (viewer, operator, approver, admin).",
        ),
        "trigger": Entry(
            "backout.cli.deploy", "Make the running deploy or watch of SERVICE back out now."
        ),
        "validate": Entry(
            "backout.cli.plans",
            "Check plan files; exit 2 on any error (FILE:LINE:COL: field: message (hint)).",
        ),
        "watch": Entry(
            "backout.cli.deploy", "Watch deployed releases; back out any whose trigger fires."
        ),
        "worker": Entry(
            "backout.cli.runs", "Resume runs whose executor died, once their lease has expired."
        ),
    }
)
