"""``kubectl:`` — roll a workload back with ``kubectl rollout undo`` (to a revision recorded
as a baseline), or wait for a rollout with ``kubectl rollout status``.

``undo`` then waits for the rollout to finish within the step's time budget (``wait``), so
the step ends when the old pods serve, not when the API accepted the change. A rollback
renumbers what it restores (revision 3 comes back as the newest revision, and 3 leaves the
history), so an undo cannot simply be run twice: for a Deployment the step first reads the
current revision, and when the requested one is gone from the history, it looks for it in
the current ReplicaSet's ``revision-history`` annotation — already rolled back is then a
success that changes nothing. Its reverse rolls forward to the revision it left.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from backout.actions.base import Action, Outcome
from backout.errors import ActionError
from backout.kernel.options import Context
from backout.probes.kube import (
    REVISION,
    REVISION_HISTORY,
    KubectlTarget,
    RevisionNumber,
    deployment_revision,
    is_deployment,
    kubectl_argv,
    kubectl_json,
)
from backout.probes.toolcli import Deadline, Transcript, dig, run_tool

NOT_IN_HISTORY = "unable to find specified revision"


class KubectlOptions(KubectlTarget):
    action: Literal["undo", "status"] = Field(
        "undo", description="undo: roll back; status: wait for the rollout to finish."
    )
    to_revision: RevisionNumber | None = Field(
        None,
        description="The revision to roll back to, e.g. `{{ baseline.revision }}`; "
        "none: the previous one.",
    )
    wait: bool = Field(True, description="undo: then wait for the rollout to finish.")


class KubectlAction(Action):
    kind = "kubectl"
    in_process = False
    Options = KubectlOptions

    def execute(self, options: KubectlOptions, ctx: Context) -> Outcome:
        deadline, log = Deadline(ctx.timeout), Transcript()
        try:
            if options.action == "status":
                return _status(options, ctx, deadline, log, {"resource": options.resource})
            to = int(options.to_revision) if options.to_revision is not None else None
            return _undo(options, to, ctx, deadline, log)
        except ActionError as exc:
            return Outcome(False, ctx.redact(exc.message), log.text(ctx))

    def reverse(self, options: KubectlOptions, done: dict[str, Any], ctx: Context) -> Outcome:
        if options.action == "status":
            return Outcome(True, "nothing to undo: a rollout status changes nothing")
        if not done.get("from_revision"):
            return Outcome(False, "cannot reverse: the step recorded no revision it left")
        deadline, log = Deadline(ctx.timeout), Transcript()
        try:
            return _undo(options, int(done["from_revision"]), ctx, deadline, log)
        except ActionError as exc:
            return Outcome(False, ctx.redact(exc.message), log.text(ctx))

    def describe(self, options: KubectlOptions) -> str:
        if options.action == "status":
            return f"kubectl rollout status {options.resource}"
        to = f"revision {options.to_revision}" if options.to_revision else "the previous revision"
        return f"kubectl rollout undo {options.resource} to {to}"


def _undo(
    options: KubectlOptions, to: int | None, ctx: Context, deadline: Deadline, log: Transcript
) -> Outcome:
    deployment = is_deployment(options.resource)
    current = _revision(options, ctx, deadline) if deployment else None
    detail: dict[str, Any] = {
        "resource": options.resource,
        "from_revision": current,
        "to_revision": to,
    }
    if to is not None and current == to:
        return Outcome(True, f"{options.resource} is at revision {to}: nothing to undo", "", detail)
    args = ["rollout", "undo", options.resource]
    args += [f"--to-revision={to}"] if to is not None else []
    result = log.add(run_tool(kubectl_argv(options, *args), ctx, timeout=deadline.remaining()))
    if not result.ok:
        if to is not None and deployment and NOT_IN_HISTORY in result.stderr:
            restored = _already_restored(options, ctx, deadline, current, to)
            if restored:
                detail["revision"] = current
                return Outcome(True, restored, log.text(ctx), detail)
        return Outcome(False, ctx.redact(f"rollout undo failed: {result.problem()}"), log.text(ctx))
    if deployment:
        detail["revision"] = _revision(options, ctx, deadline)
    if not options.wait:
        return Outcome(True, _undone(options, detail), log.text(ctx), detail)
    return _status(options, ctx, deadline, log, detail, _undone(options, detail) + "; ")


def _revision(options: KubectlOptions, ctx: Context, deadline: Deadline) -> int:
    data = kubectl_json(options, ctx, deadline.remaining(), "get", options.resource)
    return deployment_revision(data, options.resource)


def _already_restored(
    options: KubectlOptions, ctx: Context, deadline: Deadline, current: int | None, to: int
) -> str | None:
    """Revision ``to`` is gone from the history: if the current ReplicaSet came from it (its
    ``revision-history`` annotation lists it), an earlier undo already restored it."""
    deployment = kubectl_json(options, ctx, deadline.remaining(), "get", options.resource)
    labels = dig(deployment, "spec", "selector", "matchLabels") or {}
    selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
    if not selector:
        return None
    sets = kubectl_json(
        options, ctx, deadline.remaining(), "get", "replicasets", "--selector", selector
    )
    for item in dig(sets, "items") or []:
        annotations = dig(item, "metadata", "annotations") or {}
        if str(annotations.get(REVISION)) != str(current):
            continue
        earlier = str(annotations.get(REVISION_HISTORY, "")).split(",")
        if str(to) in earlier:
            return (
                f"{options.resource} already runs revision {to}'s pod template "
                f"(now revision {current}): nothing to undo"
            )
    return None


def _undone(options: KubectlOptions, detail: dict[str, Any]) -> str:
    to = detail["to_revision"]
    target = f"revision {to}" if to is not None else "the previous revision"
    now = f" (now revision {detail['revision']})" if detail.get("revision") else ""
    return f"{options.resource} rolled back to {target}{now}"


def _status(
    options: KubectlOptions,
    ctx: Context,
    deadline: Deadline,
    log: Transcript,
    detail: dict[str, Any],
    prefix: str = "",
) -> Outcome:
    """``rollout status`` with kubectl's own timeout a little inside the step's, so that
    kubectl, not the step's kill, says what was still rolling out."""
    seconds = max(int(deadline.remaining()) - 1, 1)
    args = ["rollout", "status", options.resource, "--watch", f"--timeout={seconds}s"]
    result = log.add(run_tool(kubectl_argv(options, *args), ctx, timeout=deadline.remaining()))
    if not result.ok:
        summary = f"{prefix}rollout not finished: {result.problem()}"
        return Outcome(False, ctx.redact(summary), log.text(ctx), detail)
    said = result.stdout.strip().splitlines()
    finished = said[-1] if said else "rolled out"
    return Outcome(True, ctx.redact(prefix + finished), log.text(ctx), detail)
