"""One plan, several environments (``--env``): each environment is its own service key,
so runs, leases, snapshots and rehearsals of staging never touch production's; templates
read the environment's values; a plan that declares environments needs --env."""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import time
from pathlib import Path

import pytest

from backout import commands
from backout.errors import ServiceBusyError, UsageError
from backout.settings import Settings
from tests.callers import caller

PLAN = """
plan: shop
environments:
  staging: {dir: staging}
  production: {dir: production}
baseline:
  release: {readlink: "{{ environment.dir }}/current"}
steps:
  - name: switch back
    symlink: {link: "{{ environment.dir }}/current", target: releases/good}
    timeout: 5s
  - name: note where
    run:
      - sh
      - -c
      - 'echo "$BACKOUT_ENVIRONMENT_NAME $BACKOUT_ENVIRONMENT_DIR" > "$0/where"'
      - "{{ environment.dir }}"
    timeout: 5s
verify:
  - name: good release live
    command: {argv: [cat, "{{ environment.dir }}/current/VERSION"], contains: good}
"""


def world(tmp_path: Path) -> Path:
    for env in ("staging", "production"):
        for release in ("good", "bad"):
            (tmp_path / env / "releases" / release).mkdir(parents=True)
            (tmp_path / env / "releases" / release / "VERSION").write_text(release)
        (tmp_path / env / "current").symlink_to("releases/bad")
    plan = tmp_path / "plan.yaml"
    plan.write_text(textwrap.dedent(PLAN))
    return plan


def test_each_environment_is_its_own_service(store_url: str, tmp_path: Path) -> None:
    plan = world(tmp_path)
    me = caller(Settings(database_url=store_url, actor="tester", lease_ttl=5.0))
    (tmp_path / "staging" / "current").unlink()
    (tmp_path / "staging" / "current").symlink_to("releases/good")
    staging = commands.snapshot(me, plan, environment="staging")
    assert staging.service == "shop@staging"
    assert staging.values == {"release": "releases/good"}  # read where --env points
    production = commands.snapshot(me, plan, environment="production")
    assert production.values == {"release": "releases/bad"}
    (tmp_path / "staging" / "current").unlink()
    (tmp_path / "staging" / "current").symlink_to("releases/bad")

    report = commands.run(me, plan, environment="staging")
    assert report.status == "succeeded"
    assert report.service == "shop@staging"
    assert (tmp_path / "staging" / "current").readlink() == Path("releases/good")
    assert (tmp_path / "production" / "current").readlink() == Path("releases/bad")
    assert (tmp_path / "staging" / "where").read_text().split() == ["staging", "staging"]
    assert not (tmp_path / "production" / "where").exists()

    # each run renders with its own environment's snapshot, never the other's
    prod = commands.run(me, plan, environment="production")
    assert prod.service == "shop@production"
    rows = {r.service: r for r in commands.runs(me)}
    assert set(rows) == {"shop@staging", "shop@production"}
    events = commands.journal(me, report.run_id)
    assert events[0].data["snapshot_id"] == staging.snapshot_id
    assert commands.journal(me, prod.run_id)[0].data["snapshot_id"] == production.snapshot_id


HOLD = """  - name: hold
    run: [sh, -c, 'echo $$ > "$0/held"; exec sleep 60', "{{ environment.dir }}"]
    timeout: 90s
"""


def test_a_run_in_one_environment_does_not_block_another(store_url: str, tmp_path: Path) -> None:
    plan = world(tmp_path)
    plan.write_text(textwrap.dedent(PLAN).replace("steps:\n", "steps:\n" + HOLD, 1))
    me = caller(Settings(database_url=store_url, actor="tester", lease_ttl=5.0))
    thread = threading.Thread(
        target=lambda: commands.run(me, plan, environment="production"), daemon=True
    )
    thread.start()
    held = tmp_path / "production" / "held"
    deadline = time.monotonic() + 30
    while not (held.exists() and held.read_text().strip()):
        assert time.monotonic() < deadline, "production never started its step"
        time.sleep(0.05)
    try:
        with pytest.raises(ServiceBusyError):  # production's own lease is held
            commands.run(me, plan, environment="production")
        quick = tmp_path / "quick.yaml"
        quick.write_text(textwrap.dedent(PLAN))
        assert commands.run(me, quick, environment="staging").status == "succeeded"
        active = [r for r in commands.runs(me) if r.status == "running"]
        assert [r.service for r in active] == ["shop@production"]
    finally:
        os.kill(int(held.read_text()), signal.SIGKILL)  # the held step fails; the run ends
        thread.join(30)
    assert not thread.is_alive()
    assert [r.status for r in commands.runs(me) if r.service == "shop@production"] == ["failed"]


def test_a_plan_with_environments_needs_env(store_url: str, tmp_path: Path) -> None:
    plan = world(tmp_path)
    me = caller(Settings(database_url=store_url, actor="tester"))
    with pytest.raises(UsageError) as missing:
        commands.run(me, plan)
    assert "say which with --env" in missing.value.message
    with pytest.raises(UsageError) as unknown:
        commands.run(me, plan, environment="prod")
    assert "has no environment 'prod'" in unknown.value.message
    assert "production, staging" in (unknown.value.hint or "")
    assert commands.runs(me) == []  # refused before anything was created
