"""A run that waits for a trigger has its backout ready: the shim zygote is up before the
alert comes, so the first backout step forks its shim instead of starting a Python."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from backout import commands, proc
from backout.settings import Settings
from tests.callers import caller
from tests.services import wait_until

PLAN = """\
plan: ready
service: ready
triggers:
  - name: paged
    alertmanager: {{match: {{service: ready}}}}
steps:
  - name: back out
    {step}
"""


def watching(url: str) -> bool:
    newest = commands.runs(caller(Settings(database_url=url, actor="t")), "ready", limit=1)
    if not newest or newest[0].status != "running":
        return False
    events = commands.journal(caller(Settings(database_url=url, actor="t")), newest[0].run_id)
    return any(e.kind == "watch_started" for e in events)


@pytest.mark.parametrize(
    ("step", "ready"),
    [("run: ['true']", True), ("wait: {delay: 0s}", False)],
    ids=["a-program", "no-program"],
)
def test_a_watch_readies_its_backouts_zygote_before_the_trigger(
    store_url: str, tmp_path: Path, step: str, ready: bool
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.format(step=step))
    me = caller(Settings(database_url=store_url, actor="watcher"))
    seen: dict[str, object] = {}

    def trigger_once_watching() -> None:
        try:
            wait_until(lambda: watching(store_url), 30, "the watch to start")
            zygotes = list(proc._ZYGOTE)  # looked at while it waits, before any trigger
            seen["pids"] = [z.proc.pid for z in zygotes]
            seen["alive"] = [z.proc.poll() is None for z in zygotes]
        finally:
            commands.trigger(me, "ready", "looks bad")

    thread = threading.Thread(target=trigger_once_watching, daemon=True)
    thread.start()
    report = commands.watch(me, plan, 60)
    thread.join(30)

    assert report.result == "backed_out"
    if ready:  # one zygote, already running while the run waited
        assert len(seen["pids"]) == 1  # type: ignore[arg-type]
        assert seen["alive"] == [True]
        assert seen["pids"] != [os.getpid()]
    else:  # nothing to start programs with: no zygote started
        assert seen["pids"] == []
    assert proc._ZYGOTE == []  # it went with the run
