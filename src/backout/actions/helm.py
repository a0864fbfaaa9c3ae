"""``helm:`` — roll a Helm release back to a revision (the baseline's) with ``helm
rollback``, refusing a release stuck in a ``pending-*`` state unless told to recover it.

A release that a killed or timed-out helm left in ``pending-install``, ``pending-upgrade``
or ``pending-rollback`` (helm #4558, #11863) blocks upgrades. Rolling back over it is
right when the helm that left it is dead, and wrong while another helm still works on the
release; only a person knows which, so the step refuses and says so, unless the plan says
``recover: true``. A rollback makes a new revision (described ``Rollback to N``): the
step reads ``helm status -o json`` first and does nothing when the release already is
revision N or a deployed rollback to it. Its reverse rolls back to the revision it left.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from backout.actions.base import Action, Outcome
from backout.errors import ActionError
from backout.kernel.options import Context
from backout.probes.kube import HelmTarget, Release, RevisionNumber, helm_argv, helm_status
from backout.probes.toolcli import Deadline, Transcript, run_tool

ROLLBACK_TO = "Rollback to {}"  # helm's description of a rollback revision (pkg/action)


class HelmOptions(HelmTarget):
    revision: RevisionNumber | None = Field(
        None,
        description="The revision to roll back to, e.g. `{{ baseline.chart }}`; "
        "none: the previous one.",
    )
    recover: bool = Field(
        False,
        description="Roll back a release stuck in pending-install/-upgrade/-rollback "
        "(only when no other helm is still working on it).",
    )
    wait: bool = Field(True, description="Wait until the rolled-back resources are ready.")
    cleanup_on_fail: bool = Field(False, description="Delete new resources if it fails.")


class HelmAction(Action):
    kind = "helm"
    in_process = False
    Options = HelmOptions

    def execute(self, options: HelmOptions, ctx: Context) -> Outcome:
        to = int(options.revision) if options.revision is not None else None
        return _rollback(options, to, ctx)

    def reverse(self, options: HelmOptions, done: dict[str, Any], ctx: Context) -> Outcome:
        if not done.get("from_revision"):
            return Outcome(False, "cannot reverse: the step recorded no revision it left")
        return _rollback(options, int(done["from_revision"]), ctx)

    def describe(self, options: HelmOptions) -> str:
        to = f"revision {options.revision}" if options.revision else "the previous revision"
        return f"helm rollback {options.release} to {to}"


def _rollback(options: HelmOptions, to: int | None, ctx: Context) -> Outcome:
    deadline, log = Deadline(ctx.timeout), Transcript()
    try:
        before = helm_status(options, ctx, deadline.remaining())
        detail: dict[str, Any] = {
            "release": options.release,
            "from_revision": before.revision,
            "from_status": before.status,
            "to_revision": to,
        }
        if before.pending and not options.recover:
            return Outcome(False, _stuck(options, before), log.text(ctx), detail)
        if to is not None and _already(before, to):
            summary = f"release {options.release} is at revision {to}'s content: nothing to do"
            return Outcome(True, summary, log.text(ctx), detail)
        result = log.add(run_tool(_argv(options, to, deadline), ctx, timeout=deadline.remaining()))
        after = helm_status(options, ctx, deadline.remaining())
    except ActionError as exc:
        return Outcome(False, ctx.redact(exc.message), log.text(ctx))
    detail.update(revision=after.revision, status=after.status)
    target = f"revision {to}" if to is not None else "the previous revision"
    if not result.ok:
        summary = f"helm rollback failed: {result.problem()}; the release is {after.status} "
        summary += f"at revision {after.revision}"
        return Outcome(False, ctx.redact(summary), log.text(ctx), detail)
    recovered = f", recovered from {before.status}" if before.pending else ""
    summary = f"release {options.release} rolled back to {target} (now revision "
    summary += f"{after.revision}, {after.status}{recovered})"
    return Outcome(after.status == "deployed", summary, log.text(ctx), detail)


def _already(release: Release, to: int) -> bool:
    if release.status != "deployed":
        return False
    return release.revision == to or release.description == ROLLBACK_TO.format(to)


def _stuck(options: HelmOptions, release: Release) -> str:
    return (
        f"release {options.release} is stuck in {release.status} (revision {release.revision}): "
        "helm left an operation unfinished. If no helm is still working on it (a killed or "
        "timed-out one left it so), set `recover: true` on this step to roll back over it; "
        "otherwise wait for that helm to finish"
    )


def _argv(options: HelmOptions, to: int | None, deadline: Deadline) -> list[str]:
    args = ["rollback", options.release]
    args += [str(to)] if to is not None else []
    if options.wait:
        # helm's own timeout inside the step's, so helm says what did not become ready
        args += ["--wait", f"--timeout={max(int(deadline.remaining()) - 2, 1)}s"]
    if options.cleanup_on_fail:
        args.append("--cleanup-on-fail")
    return helm_argv(options, *args)
