"""Named setups a document's blocks ask for with ``<!-- doctest: setup=NAME -->``.

Each takes the document's session and prepares its working folder (and may move into a
new one); what a reader would have done before the block, done quietly.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from backout.actions import Context
from backout.actions.nginx import NginxAction, NginxOptions
from tests.alertmanager import Alertmanager, start_alertmanager
from tests.docs.setup_fleet import fleet_targets
from tests.docs.transcripts import IdMap, Session, Setup, blocks
from tests.integration.test_pagerduty_acks import webhook
from tests.services import (
    Backend,
    Nginx,
    Prometheus,
    start_backend,
    start_nginx,
    start_prometheus,
    stop_process,
)

ROOT = Path(__file__).resolve().parents[2]

SHOP = """\
mkdir -p releases/v1 releases/v2 bin
echo "shop v1" > releases/v1/VERSION
echo "shop v2" > releases/v2/VERSION
ln -sfn v1 releases/current
printf '#!/bin/sh\\necho "restarted $1: $(cat releases/current/VERSION)"\\n' > bin/restart
chmod +x bin/restart
"""


def quietly(session: Session, script: str) -> None:
    result = session.script(script)
    if result.returncode != 0:
        raise AssertionError(f"setup failed (exit {result.returncode}):\n{script}\n{result.stdout}")


def folder(name: str) -> Setup:
    """Start over in an empty folder ROOT/NAME: a reader's fresh terminal, no store."""

    def setup(session: Session) -> None:
        target = session.root / name
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        session.cwd = target
        session.ids = IdMap()  # a new store: the doc may reuse its ids

    return setup


def shop(session: Session) -> None:
    """The README's toy service: two releases, ``current`` -> v1, ``bin/restart``."""
    quietly(session, SHOP)


def snapshot_then_deploy_v2(session: Session) -> None:
    """The baseline recorded with v1 live, then v2 deployed (``backout.yaml`` exists)."""
    quietly(session, "backout snapshot backout.yaml >/dev/null && ln -sfn v2 releases/current")


def backout_now(session: Session) -> None:
    """``backout run backout.yaml``, as the text before the block says to."""
    quietly(session, "backout run backout.yaml >/dev/null")


def examples(session: Session) -> None:
    """The plans of examples/ copied into the working folder."""
    for path in (ROOT / "examples").glob("*.yaml"):
        shutil.copy(path, session.cwd / path.name)


def doc_block(doc: str, lang: str, first_line: str, containing: str = "") -> str:
    """The text of the doc's first ```LANG block that starts with FIRST_LINE (and holds
    CONTAINING): a setup writes what the doc shows, not a copy that could drift from it."""
    for block in blocks(ROOT / doc):
        text = "\n".join(block.body) + "\n"
        if block.lang == lang and text.startswith(first_line) and containing in text:
            return text
    raise AssertionError(f"{doc}: no ```{lang} block starting with {first_line!r}")


def steps(*names: Setup) -> Setup:
    """Several setups in order, as one."""

    def setup(session: Session) -> None:
        for name in names:
            name(session)

    return setup


def write(name: str, text: str) -> Setup:
    def setup(session: Session) -> None:
        (session.cwd / name).write_text(text, encoding="utf-8")

    return setup


def run(script: str) -> Setup:
    return lambda session: quietly(session, script)


def env(**values: str) -> Setup:
    """Variables the reader exported before the block (kept for the rest of the doc)."""
    return lambda session: session.env.update(values)


REAL_BACKOUT = str(Path(sys.executable).with_name("backout"))


def background(command: str, ready: Callable[[Path], bool], name: str, **extra_env: str) -> Setup:
    """Start ``backout COMMAND`` in the working folder as a process of its own (the real
    program, not the fork server's shim, so that a signal reaches it), wait until
    ``ready(folder)``, and stop it when the doc is done. Its pid goes to NAME.pid."""

    def setup(session: Session) -> None:
        folder = session.cwd
        log = (folder / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [REAL_BACKOUT, *shlex.split(command)],
            cwd=folder,
            env={**session.env, **extra_env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        (folder / f"{name}.pid").write_text(str(process.pid))

        def stop() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)

        session.cleanups.append(stop)
        deadline = time.monotonic() + 60
        while not ready(folder):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"backout {command} did not get ready:\n"
                    + (folder / f"{name}.log").read_text(errors="replace")
                )
            time.sleep(0.1)

    return setup


def log_says(name: str, text: str) -> Callable[[Path], bool]:
    def ready(folder: Path) -> bool:
        path = folder / f"{name}.log"
        return path.exists() and text in path.read_text(errors="replace")

    return ready


def terminate(name: str) -> Setup:
    """SIGTERM to the background process NAME, and wait until it has stopped."""

    def setup(session: Session) -> None:
        pid = int((session.cwd / f"{name}.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return
            if done:
                return
            time.sleep(0.05)
        raise AssertionError(f"backout ({name}) did not stop on SIGTERM")

    return setup


PG_SERVER = os.environ.get("BACKOUT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
EMPTY_DB = "backout_docs_empty"


def empty_postgres_database(session: Session) -> None:
    """A PostgreSQL database with no tables in it (read-only verbs never create any)."""
    with psycopg.connect(PG_SERVER, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [EMPTY_DB])
        if exists.fetchone() is None:
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(EMPTY_DB)))


# --- operations.md: the three-step payments plan, crashed in its non-idempotent step ----

SLOW_PAYMENTS = """\
plan: payments-slow
service: payments
steps:
  - name: drain the payment queue
    wait: 120s
    timeout: 130s
"""


def crashed_in_step(n: int, plan: str = "backout.yaml") -> Setup:
    """``backout run PLAN`` killed (SIGKILL) right after step N's start was journalled."""
    return run(f"BACKOUT_FAILPOINTS=step_started:{n} backout run {plan} >/dev/null 2>&1; true")


def claim_newest_run(session: Session) -> None:
    """The newest run of the store is the one the doc's next unknown run id names."""
    result = session.script("backout runs --json --limit 1")
    assert result.returncode == 0, result.stdout
    session.ids.unclaimed.append(str(json.loads(result.stdout)[0]["run_id"]))


def ops_plan(session: Session) -> None:
    folder("ops")(session)
    (session.cwd / "backout.yaml").write_text(
        doc_block("docs/operations.md", "yaml", "plan: payments"), encoding="utf-8"
    )


def ops_slow_first_step(session: Session) -> None:
    """operations.md's payments plan whose first step takes a while (``sleep 30``)."""
    ops_plan(session)
    plan = session.cwd / "backout.yaml"
    text = plan.read_text(encoding="utf-8")
    old = "run: [echo, payment workers stopped]"
    assert old in text, "operations.md: the payments plan no longer stops its workers so"
    plan.write_text(text.replace(old, "run: [sleep, '30']"), encoding="utf-8")


OPS_CRASHED = steps(ops_plan, crashed_in_step(2), claim_newest_run)
OPS_MARKED_DONE = steps(
    ops_plan,
    crashed_in_step(2),
    run(
        "id=$(backout runs --json --limit 1 | python3 -c 'import json,sys; "
        'print(json.load(sys.stdin)[0]["run_id"])\') && '
        "{ backout resume $id >/dev/null 2>&1; backout resume $id --mark-done 2 >/dev/null; }"
    ),
    claim_newest_run,
)


def hang(name: str, lease_ttl: float) -> Setup:
    """SIGSTOP the background process NAME (alive, but it renews its lease no more), and
    wait out its lease."""

    def setup(session: Session) -> None:
        os.kill(int((session.cwd / f"{name}.pid").read_text()), signal.SIGSTOP)
        time.sleep(lease_ttl + 1)  # the lease's expiry is a time: nothing to poll for

    return setup


OPS_HUNG = steps(
    ops_plan,
    write("drain.yaml", SLOW_PAYMENTS),
    background("run drain.yaml", log_says("drain", "▶ step 1"), "drain", BACKOUT_LEASE_TTL="2"),
    hang("drain", 2),
    claim_newest_run,
)
LEDGER_STUCK = steps(
    run(
        "BACKOUT_FAILPOINTS=action_done:1 backout run ledger.yaml >/dev/null 2>&1; "
        "id=$(backout runs --json --limit 1 | python3 -c 'import json,sys; "
        'print(json.load(sys.stdin)[0]["run_id"])\') && '
        "{ backout resume $id >/dev/null 2>&1; test $? = 3; }"
    ),
    claim_newest_run,
)
OPS_BUSY = steps(
    ops_plan,
    write("drain.yaml", SLOW_PAYMENTS),
    background("run drain.yaml", log_says("drain", "▶ step 1"), "drain"),
)


# --- changes.md, audit.md: a change record of the shop plan ----------------------------

CHANGE_PLAN = """\
plan: shop
service: shop
risk: medium
rto: 2m
roles:
  lead: alice@example.com
  approvers: [bob@example.com, carol@example.com]
steps:
  - name: point current at v1
    symlink: {link: current, target: releases/v1}
    timeout: 10s
    idempotent: true
verify:
  - name: v1 is live
    command: [test, -e, current/VERSION]
"""
CREATE = (
    "backout --actor alice@example.com change create --plan backout.yaml "
    '--title "Deploy shop 2.4" >/dev/null'
)
CHANGE_FRESH = steps(folder("changes"), write("backout.yaml", CHANGE_PLAN))
CHANGE_APPROVED = steps(
    CHANGE_FRESH,
    run(
        CREATE.replace(">/dev/null", "")
        + " --risk high --window 2030-12-01T22:00..23:30 --ref CHG0030042 >/dev/null"
        ' && backout --actor bob@example.com change approve 1 --comment "rehearsed on staging"'
        " >/dev/null"
    ),
)
PLAN_EDITED = run("sed -i 's/rto: 2m/rto: 3m/' backout.yaml")
AUDITED_CHANGE = steps(
    CHANGE_FRESH,
    run(
        f"{CREATE} && "
        'backout --actor bob@example.com change approve 1 --comment "rehearsed on staging"'
        " >/dev/null && backout --actor carol@example.com change start 1 >/dev/null && "
        'backout --actor root change complete 1 --note "2.4 live" >/dev/null'
    ),
)
MORE_AUDIT = run(
    CREATE.replace("2.4", "2.5") + " && backout --actor bob@example.com change approve 2 >/dev/null"
)


def config_file(session: Session) -> None:
    """configuration.md: its backout.toml in a deploy folder, and alice exported."""
    folder("deploys")(session)
    text = doc_block("docs/configuration.md", "toml", "# backout.toml")
    (session.cwd / "backout.toml").write_text(text, encoding="utf-8")
    session.env["BACKOUT_ACTOR"] = "alice"


def readme_plan(session: Session) -> None:
    """The README tutorial's service and plan, in a folder of their own."""
    folder("readme")(session)
    shop(session)
    text = doc_block("README.md", "yaml", "plan: shop", "baseline:  ")
    (session.cwd / "backout.yaml").write_text(text, encoding="utf-8")


README_BACKED_OUT = steps(
    readme_plan,
    run(
        "backout snapshot backout.yaml >/dev/null && ln -sfn v2 releases/current && "
        "backout run backout.yaml >/dev/null 2>&1"
    ),
    claim_newest_run,
)
EDIT_A_JOURNAL_ROW = run(
    "python3 -c \"import sqlite3; db = sqlite3.connect('.backout/backout.db'); "
    "db.execute(\\\"UPDATE journal SET data = replace(data, 'exit code 0', 'exit code 9') "
    "WHERE kind = 'step_finished'\\\"); db.commit()\""
)


# --- rehearsals.md: the staging shop behind Python's web server -------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


SERVE_CURRENT = ("--bind", "127.0.0.1", "--directory", "current")


def drill_service(session: Session) -> None:
    """The walk-through's staging service: releases good and bad, ``current`` -> good,
    served by ``python3 -m http.server``, and its plan ``backout.yaml`` — on a free port
    instead of 8080, which the plans' addresses are changed to (nothing prints them)."""
    folder("shop")(session)
    quietly(session, doc_block("docs/rehearsals.md", "sh", "mkdir shop").split("python3 -m")[0])
    port = free_port()
    server = subprocess.Popen(
        [*(sys.executable, "-m", "http.server", str(port)), *SERVE_CURRENT],
        cwd=session.cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def stop() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)

    session.cleanups.append(stop)
    plan = doc_block("docs/rehearsals.md", "yaml", "plan: shop").replace(":8080", f":{port}")
    (session.cwd / "backout.yaml").write_text(plan, encoding="utf-8")
    (session.cwd / "backout-1s.yaml").write_text(
        plan.replace("detect_within: 30s", "detect_within: 1s"), encoding="utf-8"
    )
    session.env["BACKOUT_ACTOR"] = "alice@example.com"
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as client:
            if client.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            raise AssertionError("the staging web server did not start")
        time.sleep(0.05)


def drill_port(session: Session) -> str:
    """The staging server's port, as drill_service put it in backout.yaml."""
    text = (session.cwd / "backout.yaml").read_text(encoding="utf-8")
    found = re.search(r"http://127\.0\.0\.1:(\d+)/health", text)
    assert found, "rehearsals.md: the drill-service setup comes first"
    return found.group(1)


def envs_plan(session: Session) -> None:
    """rehearsals.md's ``envs.yaml``: backout.yaml with the doc's ``environments:`` and
    telemetry, and ``{{ environment.url }}`` for staging's address everywhere else."""
    port = drill_port(session)
    url = f"http://127.0.0.1:{port}"
    plan = (session.cwd / "backout.yaml").read_text(encoding="utf-8")
    head, rest = plan.split("telemetry:\n", 1)
    _, tail = rest.split("\ntriggers:", 1)
    body = head + "triggers:" + tail.replace(url, "{{ environment.url }}")
    extra = doc_block("docs/rehearsals.md", "yaml", "environments:")
    extra = extra.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    body = body.replace("triggers:", extra + "\ntriggers:", 1)
    (session.cwd / "envs.yaml").write_text(body, encoding="utf-8")


def noidem_plan(session: Session) -> None:
    """backout.yaml whose first backout step is not marked ``idempotent: true``."""
    plan = (session.cwd / "backout.yaml").read_text(encoding="utf-8")
    step = "  - name: point current at the last good release\n"
    before, after = plan.split(step, 1)
    after = after.replace("    idempotent: true\n", "", 1)
    (session.cwd / "noidem.yaml").write_text(before + step + after, encoding="utf-8")


def age_latest_drill(seconds: float) -> Setup:
    """Every drill recorded earlier, the latest SECONDS ago: the reader waits, a setup
    moves the drills' times back instead."""

    def setup(session: Session) -> None:
        path = session.cwd / ".backout" / "backout.db"
        with contextlib.closing(sqlite3.connect(path, timeout=10)) as db:
            db.execute(
                "UPDATE rehearsals SET at = at + ? - (SELECT max(at) FROM rehearsals)",
                [time.time() - seconds],
            )
            db.commit()

    return setup


def without_sections(text: str, *keys: str) -> str:
    """A plan's text without the top-level sections KEYS."""
    out: list[str] = []
    dropping = False
    for line in text.splitlines(keepends=True):
        if line[:1] not in (" ", "\n", "#", ""):
            dropping = line.split(":", 1)[0] in keys
        if not dropping:
            out.append(line)
    return "".join(out)


def quick_snapshot(plan: str, options: str = "", store: str = "") -> Setup:
    """``backout snapshot PLAN``, without the 5 s its telemetry takes to read: the
    baseline of a copy of the plan without ``telemetry:`` (nor the ``triggers:`` reading
    it). What the drills use, the baseline's values, is the same."""

    def setup(session: Session) -> None:
        text = (session.cwd / plan).read_text(encoding="utf-8")
        copy = session.cwd / f".baseline-{plan}"
        copy.write_text(without_sections(text, "telemetry", "triggers"), encoding="utf-8")
        db = f"--db {store} " if store else ""
        quietly(session, f"backout {db}snapshot {copy.name} {options} >/dev/null")
        copy.unlink()

    return setup


DRILL_SNAPSHOT = steps(drill_service, quick_snapshot("backout.yaml"))
POLICY_MAX_AGE = """\
high:
  verify: true
  rto: true
  approvals: 1
  window: true
  rehearsal: {max_age: 10s, fits_rto: true}
"""


# --- notifications.md: the README's shop, told through a signed webhook ------------------

WEBHOOK_SECRET = "whsec_" + "c2VjcmV0LWZvci10aGUtZG9jcy1yZWNlaXZlcg=="  # base64 of a docs key


def receiver_up(session: Session) -> None:
    """The doc's ``receiver.py`` on the port of ``receiver.port``, printing to receiver.log."""
    folder = session.cwd
    port = int((folder / "receiver.port").read_text())
    log = (folder / "receiver.log").open("ab")
    server = subprocess.Popen(
        [sys.executable, "receiver.py"],
        cwd=folder,
        env={**session.env, "PYTHONPATH": str(ROOT / "src")},
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    (folder / "receiver.pid").write_text(str(server.pid))

    def stop() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)

    session.cleanups.append(stop)
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as client:
            if client.connect_ex(("127.0.0.1", port)) == 0:
                return
        if server.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(
                "receiver.py did not start:\n" + (folder / "receiver.log").read_text()
            )
        time.sleep(0.05)


def receiver_down(session: Session) -> None:
    pid = int((session.cwd / "receiver.pid").read_text())
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def notify_shop(session: Session) -> None:
    """The README's service with notifications.md's plan and receiver, on a free port."""
    folder("notify")(session)
    shop(session)
    port = free_port()
    (session.cwd / "receiver.port").write_text(str(port))
    plan = doc_block("docs/notifications.md", "yaml", "plan: shop", "notify:")
    plan = plan.replace("127.0.0.1:9000", f"127.0.0.1:{port}")
    (session.cwd / "backout.yaml").write_text(plan, encoding="utf-8")
    receiver = doc_block("docs/notifications.md", "python", "# receiver.py")
    receiver = receiver.replace('("127.0.0.1", 9000)', f'("127.0.0.1", {port})')
    (session.cwd / "receiver.py").write_text(receiver, encoding="utf-8")
    session.env.update(BACKOUT_WEBHOOK_SECRET=WEBHOOK_SECRET, BACKOUT_ACTOR="alice@example.com")
    receiver_up(session)


REPORT_OF_A_CHANGE = steps(
    notify_shop,
    run(
        "backout change create --plan backout.yaml --title 'Deploy shop 2.4' >/dev/null && "
        "backout --actor bob@example.com change approve 1 >/dev/null && "
        "backout snapshot backout.yaml >/dev/null && ln -sfn v2 releases/current && "
        "backout run backout.yaml --change 1 >/dev/null 2>&1"
    ),
    claim_newest_run,
)
A_FAILED_RUN = steps(
    run(
        "sed -e 's|run: \\[./bin/restart, shop\\]|run: [sh, -c, \"exit 1\"]|' "
        "-e 's/retries: 2/retries: 0/' backout.yaml > failing.yaml && "
        "ln -sfn v2 releases/current && backout run failing.yaml >/dev/null 2>&1; test $? = 1"
    ),
    claim_newest_run,
)


def dead_receiver_run(session: Session) -> None:
    """With the receiver down, a backout whose command is killed once its run has finished
    (instead of its waiting 10 s for the notifications it queued): both are left queued,
    as after any command that gave up on them."""
    receiver_down(session)
    quietly(session, "ln -sfn v2 releases/current")
    name = "dead-receiver-run"
    background("run backout.yaml", log_says(name, "succeeded: backout finished"), name)(session)
    pid = int((session.cwd / f"{name}.pid").read_text())
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


RECOVERY_PLAN = """\
plan: restore-from-backup
service: shop-restore
risk: low
steps:
  - name: restore from last night's backup
    run: [echo, restored]
    timeout: 10s
    idempotent: true
"""
DISASTER_RECOVERY = """\
disaster_recovery:
  owner: dr-team
  runbook: https://wiki.example.com/shop/disaster-recovery
  plan: ../dr/restore-from-backup.yaml
  auto: true
  page: [feed]
"""


def handed_off_run(session: Session) -> None:
    """notifications.md's failed run (its restart step exits 1) with a
    ``disaster_recovery:`` that pages ``feed`` and starts a recovery plan (one step,
    low risk: no drill is due)."""
    dr = session.cwd.parent / "dr"
    dr.mkdir(exist_ok=True)
    (dr / "restore-from-backup.yaml").write_text(RECOVERY_PLAN, encoding="utf-8")
    plan = (session.cwd / "failing.yaml").read_text(encoding="utf-8")
    (session.cwd / "handoff.yaml").write_text(plan + DISASTER_RECOVERY, encoding="utf-8")
    quietly(
        session,
        "ln -sfn v2 releases/current && backout run handoff.yaml >/dev/null 2>&1; test $? = 1",
    )
    result = session.script("backout runs --json --limit 2")
    assert result.returncode == 0, result.stdout
    runs = json.loads(result.stdout)
    failed = [r["run_id"] for r in runs if r.get("plan") == "shop"]
    assert failed, result.stdout
    session.ids.unclaimed.append(str(failed[0]))


PAGERDUTY_SECRET = "the secret PagerDuty showed at creation"  # as the doc exports it


def pagerduty_webhook(run_id: str) -> bytes:
    """PagerDuty's V3 webhook of an acknowledgement by Dana Oncall of the run's incident
    (its ``incident_key`` is the run's ``dedup_key``, the run id)."""
    return webhook(run_id, "01DEN4HPBQAAAG05V5QQYBRZMF")


def pagerduty_acks(session: Session) -> None:
    """A failed run of notifications.md's shop, and PagerDuty (played by a thread): once
    something listens on the port the doc's 9096 stands for, Dana Oncall acknowledges the
    run's incident there, and PagerDuty sends its signed webhook."""
    from backout.notify.pagerduty_acks import sign

    notify_shop(session)
    quietly(session, "backout snapshot backout.yaml >/dev/null")
    A_FAILED_RUN(session)
    run_id = session.ids.unclaimed.pop()
    port = free_port()
    session.aliases["0.0.0.0:9096"] = f"0.0.0.0:{port}"
    body = pagerduty_webhook(run_id)
    stop = threading.Event()

    def pagerduty() -> None:
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(
                    f"http://127.0.0.1:{port}/pagerduty",
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        "X-PagerDuty-Signature": sign(body, PAGERDUTY_SECRET),
                    },
                    timeout=10,
                ).raise_for_status()
                return
            stop.wait(0.1)

    thread = threading.Thread(target=pagerduty, daemon=True)
    thread.start()

    def done() -> None:
        stop.set()
        thread.join(15)

    session.cleanups.append(done)


NOTIFY_BAD_PLANS = run(
    """sed 's/events: \\["\\*"\\]/events: [run.exploded]/' backout.yaml > bad.yaml && """
    "sed 's/      webhook:/      servicenow:/' backout.yaml > itsm.yaml"
)


# --- flags.md: two flags, served over HTTP on a free port shown as 8016 ---------------------


def flags_served(session: Session) -> None:
    folder("flags")(session)
    quietly(
        session,
        "python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > flags.token && "
        "backout --actor deploy-bot flags set new-checkout --off >/dev/null && "
        "backout --actor deploy-bot flags set new-checkout --on >/dev/null && "
        "backout --actor deploy-bot flags set new-checkout --on --percentage 25 >/dev/null && "
        "backout --actor deploy-bot flags set dark-mode --off >/dev/null",
    )
    port = free_port()
    session.aliases["8016"] = str(port)
    background(
        f"flags serve --port {port} --token-file flags.token",
        log_says("flags", "serving flags"),
        "flags",
    )(session)


def plugin(doc: str, module: str, group: str) -> Setup:
    """``pip install .`` of the doc's plugin, done by hand: the module the doc shows and a
    ``.dist-info`` with its entry point, in a folder put on PYTHONPATH."""

    def setup(session: Session) -> None:
        target = session.root / "plugins"
        target.mkdir(exist_ok=True)
        source = doc_block(doc, "python", f"# {module}.py")
        (target / f"{module}.py").write_text(source, encoding="utf-8")
        name = module.replace("_", "-")
        toml = doc_block(doc, "toml", "# pyproject.toml", f'name = "{name}"')
        entry = toml.split(f'[project.entry-points."{group}"]\n', 1)[1].strip()
        info = target / f"{module}-0.1.0.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
        value = entry.replace('"', "")  # TOML's `name = "module:attr"`, as pip writes it
        (info / "entry_points.txt").write_text(f"[{group}]\n{value}\n")
        paths = [str(target), *filter(None, session.env.get("PYTHONPATH", "").split(os.pathsep))]
        session.env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))

    return setup


# --- deploy.md: nginx in front of blue (v1) and green (v2), Prometheus, Alertmanager -------

DEPLOY_RATE = 40.0  # requests per second a client sends through nginx
FAILING = 0.3  # share of green's requests that fail when it goes bad
# the doc's addresses, and the free ports the setup takes instead (put in commands, taken
# out of output): nginx, blue, green, Prometheus, Alertmanager, the deploy's listener
DOC_PORTS = {"nginx": 8080, "blue": 8081, "green": 8082, "prometheus": 9090}
DOC_PORTS.update(alertmanager=9093, listener=9095)
DOC_TOKEN_FILE = "/etc/backout/listen-token"
PROMETHEUS_CONFIG = """\
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: [{rules}]
alerting:
  alertmanagers:
    - static_configs: [{{targets: ["127.0.0.1:{alertmanager}"]}}]
scrape_configs:
  - job_name: checkout
    scrape_timeout: 1s
    static_configs:
      - {{targets: ["127.0.0.1:{blue}"], labels: {{color: blue}}}}
      - {{targets: ["127.0.0.1:{green}"], labels: {{color: green}}}}
"""


class Colour:
    """One colour of checkout: ``/`` (failing a share of its requests when told),
    ``/version`` ({"release": …}), ``/health``, and ``http_requests_total{code}`` on
    ``/metrics``. It can be stopped (its process killed) and started again on its port."""

    def __init__(self, name: str, release: str) -> None:
        self.name, self.release = name, release
        self.failing = 0.0
        self.codes: Counter[int] = Counter()
        self.lock = threading.Lock()
        self.backend: Backend | None = None
        self.port = 0

    def handle(self, path: str) -> tuple[int, str, str]:
        if path == "/metrics":
            with self.lock:
                codes = {200: 0, **self.codes}
            series = "".join(
                f'http_requests_total{{code="{code}"}} {count}\n'
                for code, count in sorted(codes.items())
            )
            return 200, "text/plain; version=0.0.4", "# TYPE http_requests_total counter\n" + series
        if path == "/health":
            return 200, "text/plain", "ok\n"
        with self.lock:
            served = sum(self.codes.values())
            # every 10 requests the first FAILING*10 fail: a steady share, no lucky streaks
            failing = path == "/" and served % 10 < round(self.failing * 10)
            code = 500 if failing else 200
            self.codes[code] += 1
        if path == "/version":
            return code, "application/json", json.dumps({"release": self.release})
        return code, "text/plain", f"checkout {self.release} ({self.name})\n"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.backend = start_backend(self.handle, self.port)
        self.port = self.backend.port

    def stop(self) -> None:
        if self.backend is not None:
            self.backend.server.shutdown()
            self.backend.server.server_close()
            self.backend = None


@dataclass
class DeployStack:
    """What deploy.md's setups started, kept on the session between its blocks."""

    folder: Path
    nginx: Nginx
    colours: dict[str, Colour]
    prometheus: Prometheus
    alertmanager: Alertmanager
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def spawn(self, target: Callable[[], None]) -> None:
        """A helper thread (the client, a watcher), ended and joined by :meth:`close`."""
        self.threads.append(threading.Thread(target=target, daemon=True))
        self.threads[-1].start()

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)

    def weights(self, green: int) -> NginxOptions:
        """The nginx action's options for this green weight, as the plans write them."""
        return NginxOptions.model_validate(
            {
                "upstream_file": str(self.nginx.include),
                "upstream": self.nginx.upstream,
                "servers": {name: colour.address for name, colour in self.colours.items()},
                "weights": {"blue": 100 - green, "green": green},
                "config": str(self.nginx.conf),
            }
        )

    def route(self, green: int) -> None:
        """Traffic moved by hand (another tool): the upstream file written, nginx reloaded."""
        outcome = NginxAction().execute(
            self.weights(green), Context(workdir=self.folder, timeout=15.0)
        )
        assert outcome.ok, outcome

    def when_upstream(self, green: int, then: Callable[[], None]) -> None:
        """Call ``then`` as soon as nginx's upstream file gives green ``green``%."""
        marker = re.compile(rf"weight={green};\s+# green")

        def watch() -> None:
            deadline = time.monotonic() + 120
            while not self.stop.is_set() and time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    if marker.search(self.nginx.include.read_text()):
                        then()
                        return
                time.sleep(0.01)

        self.spawn(watch)

    def green_idle(self) -> None:
        """Wait until green's errors of an earlier run have left Prometheus' rate window."""
        query = 'sum(rate(http_requests_total{job="checkout", color="green"}[5s]))'
        self.prometheus.wait_for(query, lambda r: not r or float(r[0]["value"][1]) == 0, 30)


def traffic(url: str, stop: threading.Event) -> None:
    """DEPLOY_RATE requests/s, each on a fresh connection (a reload is seen at once)."""
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(timeout=2, limits=limits) as client:
        due = time.monotonic()
        deadline = due + 600  # bounded, whatever happens to the test
        while not stop.is_set() and due < deadline:
            with contextlib.suppress(httpx.HTTPError):
                client.get(url)
            due += 1 / DEPLOY_RATE
            stop.wait(max(0.0, due - time.monotonic()))


def deploy_plan(example: str, ports: dict[str, int], changes: list[tuple[str, str, int]]) -> str:
    """The example plan with this machine's addresses, relative paths for nginx's files and
    the doc's short durations: each (old, new, count) replaced exactly count times."""
    text = (ROOT / "examples" / example).read_text(encoding="utf-8")
    changes = [
        ("http://127.0.0.1/version", f"http://127.0.0.1:{ports['nginx']}/version", 2),
        ("10.0.1.10:8080", f"127.0.0.1:{ports['blue']}", -1),
        ("10.0.2.10:8080", f"127.0.0.1:{ports['green']}", -1),
        ("/etc/nginx/conf.d/checkout-upstream.conf", "nginx/checkout-upstream.conf", -1),
        ("config: /etc/nginx/nginx.conf", "config: nginx/nginx.conf", 1),
        *changes,
    ]
    for old, new, count in changes:
        found = text.count(old)
        if not found or (count >= 0 and found != count):
            raise AssertionError(f"{example}: {old!r} is there {found} times, not {count}")
        text = text.replace(old, new)
    return text


def _deploy(session: Session) -> DeployStack:
    stack = session.state.get("deploy")
    assert isinstance(stack, DeployStack), "deploy.md: the deploy-stack setup comes first"
    return stack


def deploy_stack(session: Session) -> None:
    """deploy.md's services on free ports: blue and green, nginx in front (all traffic to
    blue) with a client sending 40 requests/s through it, Prometheus scraping both colours
    every second with the doc's alerting rule, Alertmanager sending to the deploy's
    listener; the two plans (the examples, shrunk as the doc says); alice exported."""
    folder("deploy")(session)
    root = session.cwd
    colours = {"blue": Colour("blue", "v1"), "green": Colour("green", "v2")}
    for colour in colours.values():
        colour.start()
        session.cleanups.append(colour.stop)
    token = root.parent / "listen-token"
    token.write_text(secrets.token_urlsafe(32) + "\n")
    token.chmod(0o600)
    listener = free_port()
    nginx = start_nginx(root, upstream="checkout", include_name="checkout-upstream.conf")
    session.cleanups.append(lambda: stop_process(nginx.process, signal.SIGQUIT))
    alertmanager = start_alertmanager(
        root.parent,
        f"http://127.0.0.1:{listener}/alertmanager",
        token,
        group_wait="1s",
        group_interval="5s",
    )
    session.cleanups.append(lambda: stop_process(alertmanager.process))
    rules = root.parent / "rules.yml"
    rules.write_text(doc_block("docs/deploy.md", "text", "# rules.yml (Prometheus)"))
    config = PROMETHEUS_CONFIG.format(
        rules=rules,
        alertmanager=alertmanager.port,
        blue=colours["blue"].port,
        green=colours["green"].port,
    )
    prometheus = start_prometheus(root.parent, [], config_text=config)
    session.cleanups.append(lambda: stop_process(prometheus.process))
    stack = DeployStack(root, nginx, colours, prometheus, alertmanager)
    session.state["deploy"] = stack
    session.cleanups.append(stack.close)
    stack.route(0)
    stack.spawn(lambda: traffic(nginx.url, stack.stop))

    ports = {
        "nginx": nginx.port,
        "blue": colours["blue"].port,
        "green": colours["green"].port,
        "prometheus": prometheus.port,
        "alertmanager": alertmanager.port,
        "listener": listener,
    }
    for name, port in ports.items():
        session.aliases[f"127.0.0.1:{DOC_PORTS[name]}"] = f"127.0.0.1:{port}"
    session.aliases[DOC_TOKEN_FILE] = str(token)
    canary = deploy_plan(
        "canary-prometheus.yaml",
        ports,
        [
            ("http://prometheus.internal:9090", prometheus.url, 2),
            ("[1m]", "[5s]", 4),
            ("interval: 15s", "interval: 1s", 2),
            ("above 2% for 1m", "above 2% for 1s", 1),
            ("for: 1m}", "for: 1s}", 1),
            ("for: 2m,", "for: 2s,", 1),
            ("hold: 5m", "hold: 2s", 1),
            (
                "      hold: 10m\n    - name: canary 50%",
                "      hold: 6s\n    - name: canary 50%",
                1,
            ),
            ("hold: 10m", "hold: 2s", 2),
        ],
    )
    (root / "checkout-canary.yaml").write_text(canary, encoding="utf-8")
    blue_green = deploy_plan(
        "blue-green-nginx.yaml",
        ports,
        [
            ("interval: 5s", "interval: 1s", 2),
            ("above 5% for 30s", "above 5% for 3s", 1),
            ("for: 30s}", "for: 3s}", 1),
            ("for: 15s}", "for: 3s}", 1),
            ("hold: 10m", "hold: 3s", 1),
        ],
    )
    (root / "checkout-blue-green.yaml").write_text(blue_green, encoding="utf-8")
    session.env["BACKOUT_ACTOR"] = "alice@example.com"
    # Prometheus scrapes a new target after about 5 s: the doc's first command, a snapshot
    # reading the service's error ratio for 5 s, needs the first scrapes (a rate needs two)
    prometheus.wait_for('up{job="checkout"} == 1', lambda result: len(result) == 2, 30)


def green_goes_bad_at(weight: int) -> Setup:
    """Green fails 30% of its requests once it gets ``weight``% of the traffic."""

    def setup(session: Session) -> None:
        stack = _deploy(session)

        def bad() -> None:
            stack.colours["green"].failing = FAILING

        stack.when_upstream(weight, bad)

    return setup


def green_killed_at(weight: int) -> Setup:
    """Green's process is killed once it gets ``weight``% of the traffic."""

    def setup(session: Session) -> None:
        stack = _deploy(session)
        stack.when_upstream(weight, stack.colours["green"].stop)

    return setup


def green_restarted(session: Session) -> None:
    _deploy(session).colours["green"].start()


def green_bad(session: Session) -> None:
    _deploy(session).colours["green"].failing = FAILING


def green_healthy(session: Session) -> None:
    _deploy(session).colours["green"].failing = 0.0


def green_idle(session: Session) -> None:
    """Green's errors of an earlier run out of Prometheus' rate window (the reader's
    next deploy comes minutes later)."""
    _deploy(session).green_idle()


def traffic_to(green: int) -> Setup:
    return lambda session: _deploy(session).route(green)


def running_deploy_journal(session: Session, kind: str) -> list[dict[str, Any]]:
    """The ``data`` of the journal events of this kind of the deploy running now."""
    path = session.cwd / ".backout" / "backout.db"
    if not path.exists():
        return []
    with contextlib.closing(sqlite3.connect(path, timeout=10)) as db:
        rows = db.execute(
            "SELECT data FROM journal WHERE kind = ? AND run_id IN "
            "(SELECT id FROM runs WHERE status = 'running' AND mode = 'deploy') ORDER BY seq",
            [kind],
        ).fetchall()
    return [json.loads(data) for (data,) in rows]


def at_checkpoint(stage: int) -> Setup:
    """Wait until the deploy running (in the background) holds stage N's checkpoint (N
    from 1, as the progress lines count)."""

    def setup(session: Session) -> None:
        deadline = time.monotonic() + 60
        while not any(
            event.get("stage") == stage - 1
            for event in running_deploy_journal(session, "checkpoint_started")
        ):
            if time.monotonic() > deadline:
                raise AssertionError(f"no deploy reached the checkpoint of stage {stage}")
            time.sleep(0.05)

    return setup


DEPLOY_CHANGE = run(
    "backout change create --plan checkout-blue-green.yaml --title 'checkout v2 (blue-green)'"
    " >/dev/null && backout --actor bob@example.com change approve 1 >/dev/null"
)
CANARY_SNAPSHOT = run("backout snapshot checkout-canary.yaml >/dev/null")


SETUPS: dict[str, Setup] = {
    "readme-top": steps(folder("top"), shop),
    "tutorial": folder("tutorial"),
    "fresh": folder("fresh"),
    "shop": shop,
    "shop-v2-deployed": snapshot_then_deploy_v2,
    "examples": examples,
    "backout-now": backout_now,
    "empty-postgres-database": empty_postgres_database,
    "ops-crashed": OPS_CRASHED,
    "ops-marked-done": OPS_MARKED_DONE,
    "ops-busy": OPS_BUSY,
    "ops-slow-first-step": ops_slow_first_step,
    "ops-hung-executor": OPS_HUNG,
    "ledger-stuck": LEDGER_STUCK,
    "config-file": config_file,
    "readme-plan": readme_plan,
    "drill-service": drill_service,
    "write-file-plugin": plugin("docs/actions.md", "backout_write_file", "backout.actions"),
    "detect-within-20s": run("sed -i 's/detect_within: 30s /detect_within: 20s /' backout.yaml"),
    "drill-snapshot": DRILL_SNAPSHOT,
    "drilled-version-aged-17s": steps(
        run("sed -i 's/detect_within: 20s /detect_within: 30s /' backout.yaml"),
        write("backout-policy.yaml", POLICY_MAX_AGE),
        age_latest_drill(17),
    ),
    "drills-due": steps(
        DRILL_SNAPSHOT,
        envs_plan,
        quick_snapshot("envs.yaml", "--env staging"),
        run(
            "backout rehearse backout.yaml --trigger manual >/dev/null 2>&1 && "
            "backout rehearse envs.yaml --env staging --trigger manual >/dev/null 2>&1"
        ),
    ),
    "slow-db-snapshot": quick_snapshot("backout.yaml", store="sqlite:///slow.db"),
    "envs-plan": steps(
        DRILL_SNAPSHOT,
        run("backout rehearse backout.yaml --trigger manual >/dev/null 2>&1"),
        envs_plan,
    ),
    "noidem-plan": noidem_plan,
    "fail-times-plugin": plugin("docs/rehearsals.md", "backout_fail_times", "backout.faults"),
    "flags-served": flags_served,
    "flags-cli": steps(folder("flags-cli"), env(BACKOUT_ACTOR="alice")),
    "notify-shop": notify_shop,
    "receiver-down": receiver_down,
    "receiver-up": receiver_up,
    "notify-bad-plans": NOTIFY_BAD_PLANS,
    "dead-receiver-run": dead_receiver_run,
    "notify-shop-dead-receiver-run": steps(
        notify_shop, run("backout snapshot backout.yaml >/dev/null"), dead_receiver_run
    ),
    "handed-off-run": handed_off_run,
    "pagerduty-acks": pagerduty_acks,
    "report-of-a-change": REPORT_OF_A_CHANGE,
    "a-failed-run": A_FAILED_RUN,
    "readme-backed-out": README_BACKED_OUT,
    "edit-a-journal-row": EDIT_A_JOURNAL_ROW,
    "change-fresh": CHANGE_FRESH,
    "change-approved": CHANGE_APPROVED,
    "plan-edited": PLAN_EDITED,
    "audited-change": AUDITED_CHANGE,
    "more-audit": MORE_AUDIT,
    "ops-stopped": terminate("drain"),
    "deploy-stack": deploy_stack,
    "green-bad-at-25": green_goes_bad_at(25),
    "green-killed-at-25": green_killed_at(25),
    "green-restarted": green_restarted,
    "green-bad": green_bad,
    "green-healthy": green_healthy,
    "green-idle": green_idle,
    "traffic-to-blue": traffic_to(0),
    "traffic-to-green": traffic_to(100),
    "at-checkpoint-1": at_checkpoint(1),
    "at-checkpoint-3": steps(at_checkpoint(3), claim_newest_run),
    "change-1-approved": DEPLOY_CHANGE,
    "canary-snapshot": CANARY_SNAPSHOT,
    "fleet-targets": fleet_targets,
}
