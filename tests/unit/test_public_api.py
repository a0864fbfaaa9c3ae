"""The public API is pinned: adding or removing an export is a deliberate act."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import backout


def test_exports_are_pinned() -> None:
    assert sorted(backout.__all__) == [
        "Ambiguous",
        "BackoutError",
        "Conflict",
        "Forbidden",
        "Invalid",
        "Issue",
        "LoadedPlan",
        "NeedsAttentionError",
        "NotFound",
        "Plan",
        "PlanError",
        "RunReport",
        "ServiceBusyError",
        "Settings",
        "SnapshotReport",
        "StoreError",
        "TemplateError",
        "TransitionError",
        "UsageError",
        "__version__",
        "load_plan",
    ]
    for name in backout.__all__:
        assert hasattr(backout, name), name


def test_error_tree_and_exit_codes() -> None:
    assert issubclass(backout.PlanError, backout.UsageError)
    assert issubclass(backout.ServiceBusyError, backout.UsageError)
    assert issubclass(backout.UsageError, backout.BackoutError)
    assert backout.UsageError("x").exit_code == 2
    assert backout.StoreError("x").exit_code == 1
    assert backout.NeedsAttentionError("x").exit_code == 3
    error = backout.StoreError("lost", run_id="abc", step="restart", hint="look")
    assert str(error) == "lost [run abc, step restart]\nhint: look"


def test_each_error_class_carries_its_exit_code_and_http_status() -> None:
    expected = {
        backout.BackoutError: (1, 500),
        backout.UsageError: (2, 400),
        backout.PlanError: (2, 422),
        backout.TemplateError: (2, 422),
        backout.NotFound: (2, 404),
        backout.Ambiguous: (2, 400),
        backout.Conflict: (2, 409),
        backout.ServiceBusyError: (2, 409),
        backout.Forbidden: (2, 403),
        backout.StoreError: (1, 503),
        backout.TransitionError: (1, 409),
        backout.NeedsAttentionError: (3, 409),
    }
    for cls, (code, status) in expected.items():
        error = cls("x") if cls is not backout.PlanError else cls([])
        assert (error.exit_code, error.http_status) == (code, status), cls.__name__
    assert backout.Invalid is backout.UsageError


def test_importing_the_errors_loads_no_sqlalchemy_and_no_plan_loader() -> None:
    """A plugin, the step shim's neighbours and an API error handler import the errors
    cheaply: checked in a fresh interpreter, whatever this one has loaded."""
    probe = (
        "import sys, backout.errors, backout; "
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'pydantic') "
        "or m.startswith('backout.spec')]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_lazy_exports_load_on_first_use() -> None:
    probe = "import backout; print(backout.load_plan.__module__, backout.Settings.__name__)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["backout.plans", "Settings"]


def test_the_plugin_api_is_pinned() -> None:
    """What docs/actions.md tells a plugin author to import, from backout.actions only."""
    import backout.actions

    assert sorted(backout.actions.__all__) == [
        "ACTIONS",
        "Action",
        "ArgvOptions",
        "Context",
        "Options",
        "Outcome",
        "Stopped",
        "resolve",
        "run_process",
    ]
    for name in backout.actions.__all__:
        assert hasattr(backout.actions, name), name


def test_the_channel_plugin_api_is_pinned() -> None:
    """What docs/outbox.md tells a channel author to import, from backout.channels only;
    the two built-in channels are registered under their names."""
    import backout.channels

    assert sorted(backout.channels.__all__) == [
        "CHANNELS",
        "Channel",
        "ChannelOptions",
        "Delivery",
        "HttpSender",
        "ITSM_ROUTE",
        "Notice",
        "Receipt",
        "Route",
        "SendReport",
        "Sender",
        "Severity",
        "enqueue",
        "retry_after",
        "send",
        "verify",
    ]
    for name in backout.channels.__all__:
        assert hasattr(backout.channels, name), name
    channels = backout.channels.CHANNELS
    assert {"servicenow", "jira"} <= set(channels.names())
    notifying = {name for name in channels.names() if channels.get(name).notices}
    assert {"slack", "pagerduty", "teams", "email", "webhook"} <= notifying


def test_the_fault_plugin_api_is_pinned() -> None:
    """What docs/rehearsals.md tells a fault author to import, from backout.faults only."""
    import backout.faults

    assert sorted(backout.faults.__all__) == [
        "FAULTS",
        "Fault",
        "FaultContext",
        "FaultOptions",
        "Outcome",
        "Verdict",
    ]
    assert set(backout.faults.FAULTS.names()) == {
        "fail_first",
        "slow",
        "fail_check",
        "kill",
        "kill_process",
        "store_drop",
        "no_data",
        "telemetry_error",
    }


def test_the_verbs_take_a_caller_and_are_exported() -> None:
    """One verb layer: every verb the package exports takes the caller first."""
    import inspect

    from backout import commands

    plain = {"Caller", "changes", "flags", "validate", "schema", "init", "show", "rehearsal_fault"}
    plain |= {"validate_policy", "looks_like_policy", "policy_file_in_effect"}  # files only
    plain |= {"webhook_secrets"}  # reads a file or the environment
    verbs = [name for name in commands.__all__ if name not in plain]
    verbs += [f"changes.{n}" for n in ("create", "show", "list_all", "approve", "gate")]
    verbs += [f"flags.{n}" for n in ("list_flags", "get_flag", "set_flag", "evaluate_flag")]
    for dotted in verbs:
        target: object = commands
        for part in dotted.split("."):
            target = getattr(target, part)
        first = next(iter(inspect.signature(target).parameters.values()))  # type: ignore[arg-type]
        assert first.name == "caller", dotted
        assert first.annotation in ("Caller", commands.Caller), dotted


def test_a_plugin_written_against_the_public_api_runs(tmp_path: Path) -> None:
    from backout.actions import Action, Context, Options, Outcome, resolve, run_process

    class TouchOptions(Options):
        path: str

    class TouchAction(Action):
        kind = "touch"
        Options = TouchOptions

        def execute(self, options: TouchOptions, ctx: Context) -> Outcome:
            done = run_process(
                ["touch", str(resolve(ctx.workdir, options.path))],
                cwd=ctx.workdir,
                timeout=ctx.timeout,
            )
            return Outcome(done.exit_code == 0, f"exit code {done.exit_code}")

        def describe(self, options: TouchOptions) -> str:
            return f"touch {options.path}"

    action = TouchAction()
    outcome = action.execute(action.Options.model_validate({"path": "f"}), Context(tmp_path, 5))
    assert outcome.ok, outcome.summary
    assert (tmp_path / "f").is_file()
    assert not action.reversible
