"""``argocd:`` — roll an Argo CD application back to a recorded revision, as the whole
compensated sequence rather than the one command that Argo CD refuses.

Argo CD refuses ``app rollback`` while automated sync is on, and turning automated sync
back on re-syncs the bad commit (argo-cd #2441, #5351; #9570 lists the manual steps). The
step therefore:

1. reads the application (``argocd app get -o json``): its automated sync policy and its
   deployment history, where it finds the newest entry with the recorded revision;
2. suspends automated sync (``argocd app set --sync-policy none``) when it is on;
3. rolls back to that history entry (``argocd app rollback APP ID``) and, with
   ``wait_healthy``, waits until the application is healthy (``argocd app wait --health``);
4. on the way out — also when 3 failed — puts the recorded policy back, exactly as it was
   (``argocd app patch --type merge``), as ``restore_sync`` says: ``on_failure`` (the
   default) restores it only when the rollback did not happen or failed, since restoring it
   after a rollback re-deploys the bad commit until git points at the good one;
   ``always`` restores it in any case (when git already points at the good revision);
   ``never`` leaves it suspended.

The journal holds the policy read in step 1, the history entry used, and whether automated
sync ended suspended or restored; when it stays suspended, the summary gives the command
that restores it.
"""

from __future__ import annotations

import json
import shlex
from typing import Any, Literal

from pydantic import Field

from backout.actions.base import Action, Outcome
from backout.errors import ActionError
from backout.kernel.options import Context
from backout.probes.kube import App, ArgocdTarget, argocd_app, argocd_argv, entry_revision
from backout.probes.toolcli import MIN_CALL_S, Deadline, Transcript, run_tool

RESTORE_RESERVE_S = 10.0  # of the step's timeout, kept for putting the sync policy back


class ArgocdOptions(ArgocdTarget):
    revision: str = Field(
        description="The revision to roll back to, e.g. `{{ baseline.app_revision }}` (a git "
        "commit, or a chart version for a Helm source), found in the app's history."
    )
    restore_sync: Literal["on_failure", "always", "never"] = Field(
        "on_failure",
        description="When to turn automated sync back on as it was: on_failure, always, never.",
    )
    wait_healthy: bool = Field(True, description="Wait until the application is healthy.")
    prune: bool = Field(False, description="Let the rollback delete resources (--prune).")


class ArgocdAction(Action):
    kind = "argocd"
    in_process = False
    Options = ArgocdOptions

    def execute(self, options: ArgocdOptions, ctx: Context) -> Outcome:
        deadline, log = Deadline(ctx.timeout), Transcript()
        try:
            app = argocd_app(options, ctx, deadline.remaining())
        except ActionError as exc:
            return Outcome(False, ctx.redact(exc.message), log.text(ctx))
        detail: dict[str, Any] = {
            "app": options.app,
            "revision": options.revision,
            "from_revision": app.deployed,
            "sync_policy": {"automated": app.automated},
        }
        if app.deployed == options.revision:
            detail["auto_sync"] = "unchanged"
            summary = f"app {options.app} already runs {options.revision}: nothing to roll back"
            return Outcome(True, summary, "", detail)
        entry = _history_entry(app, options.revision)
        if entry is None:
            detail["auto_sync"] = "unchanged"
            return Outcome(False, _not_in_history(options, app), "", detail)
        detail["history_id"] = entry
        return _sequence(options, app, entry, ctx, deadline, log, detail)

    def describe(self, options: ArgocdOptions) -> str:
        return (
            f"argocd: suspend auto-sync of {options.app}, roll back to {options.revision}, "
            f"restore auto-sync ({options.restore_sync})"
        )


def _sequence(
    options: ArgocdOptions,
    app: App,
    entry: int,
    ctx: Context,
    deadline: Deadline,
    log: Transcript,
    detail: dict[str, Any],
) -> Outcome:
    """Suspend, roll back, restore: the restore runs whatever happened in between."""
    suspended, problem = False, ""
    try:
        if app.automated is not None:
            _run(options, ctx, deadline, log, "app", "set", options.app, "--sync-policy", "none")
            suspended = True
        problem = _roll_back(options, entry, ctx, deadline, log)
    except ActionError as exc:
        problem = exc.message
    finally:
        restore = suspended and (
            options.restore_sync == "always"
            or (options.restore_sync == "on_failure" and bool(problem))
        )
        restored = _restore(options, app, ctx, log, deadline) if restore else None
    detail["auto_sync"] = _sync_state(app, suspended, restore, restored)
    if restored:  # the restore itself failed: the one thing a person must fix at once
        problem = f"{problem + '; ' if problem else ''}{restored}"
    if problem:
        return Outcome(
            False, ctx.redact(f"argocd rollback failed: {problem}"), log.text(ctx), detail
        )
    summary = f"app {options.app} rolled back to {options.revision} (history {entry})"
    summary += "; healthy" if options.wait_healthy else ""
    if detail["auto_sync"] == "suspended":
        summary += (
            "; automated sync stays suspended (it would re-sync the bad commit): once git "
            f"points at the good revision, run `{_restore_command(options, app)}`"
        )
    elif detail["auto_sync"] == "restored":
        summary += "; automated sync restored"
    return Outcome(True, ctx.redact(summary), log.text(ctx), detail)


def _roll_back(
    options: ArgocdOptions, entry: int, ctx: Context, deadline: Deadline, log: Transcript
) -> str:
    """Run the rollback (and the health wait); the problem, or "" when it worked."""
    seconds = str(max(int(_budget(deadline)) - 3, 1))
    args = ["app", "rollback", options.app, str(entry), "--timeout", seconds]
    args += ["--prune"] if options.prune else []
    result = log.add(run_tool(argocd_argv(options, *args), ctx, timeout=_budget(deadline)))
    if not result.ok:
        return result.problem()
    if options.wait_healthy:
        seconds = str(max(int(_budget(deadline)) - 3, 1))
        args = ["app", "wait", options.app, "--health", "--timeout", seconds]
        result = log.add(run_tool(argocd_argv(options, *args), ctx, timeout=_budget(deadline)))
        if not result.ok:
            return f"rolled back, but not healthy: {result.problem()}"
    return ""


def _budget(deadline: Deadline) -> float:
    """What the rollback and the wait may spend: the step's time less the restore's share."""
    return max(deadline.remaining() - RESTORE_RESERVE_S, MIN_CALL_S)


def _restore(
    options: ArgocdOptions, app: App, ctx: Context, log: Transcript, deadline: Deadline
) -> str:
    """Put the automated policy back exactly as read; "" on success, else the problem with
    the command to run by hand. The rollback left it ``RESTORE_RESERVE_S`` of the step's
    time."""
    argv = argocd_argv(options, *_restore_args(options, app))
    try:
        result = log.add(run_tool(argv, ctx, timeout=deadline.remaining()))
    except ActionError as exc:
        problem = exc.message
    else:
        if result.ok:
            return ""
        problem = result.problem()
    return f"could not restore automated sync ({problem}): run `{_restore_command(options, app)}`"


def _restore_args(options: ArgocdOptions, app: App) -> list[str]:
    patch = json.dumps({"spec": {"syncPolicy": {"automated": app.automated}}})
    return ["app", "patch", options.app, "--type", "merge", "--patch", patch]


def _restore_command(options: ArgocdOptions, app: App) -> str:
    return shlex.join(["argocd", *_restore_args(options, app)])


def _sync_state(app: App, suspended: bool, restore: bool, restored: str | None) -> str:
    if app.automated is None:
        return "off"
    if not suspended:
        return "unchanged"
    if restore and not restored:
        return "restored"
    return "suspended"


def _history_entry(app: App, revision: str) -> int | None:
    """The id of the newest history entry that deployed ``revision`` (a full or short
    commit id matches)."""
    for entry in reversed(app.history):
        found = entry_revision(entry)
        if found and (found == revision or (len(revision) >= 7 and found.startswith(revision))):
            number = entry.get("id")
            return number if isinstance(number, int) else None
    return None


def _not_in_history(options: ArgocdOptions, app: App) -> str:
    known = ", ".join(
        f"{entry.get('id')}: {(entry_revision(entry) or '?')[:12]}" for entry in app.history[-5:]
    )
    return (
        f"revision {options.revision} is not in the history of app {options.app} "
        f"(newest entries: {known or 'none'}); Argo CD keeps revisionHistoryLimit entries "
        "(10 by default): nothing was changed"
    )


def _run(
    options: ArgocdOptions, ctx: Context, deadline: Deadline, log: Transcript, *args: str
) -> None:
    result = log.add(run_tool(argocd_argv(options, *args), ctx, timeout=deadline.remaining()))
    if not result.ok:
        raise ActionError(result.problem())
