"""The public API is pinned: adding or removing an export is a deliberate act."""

from __future__ import annotations

import backout


def test_exports_are_pinned() -> None:
    assert sorted(backout.__all__) == [
        "BackoutError",
        "Issue",
        "LoadedPlan",
        "NeedsAttentionError",
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
