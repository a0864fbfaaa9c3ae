"""Notifications through the outbox, on SQLite and on PostgreSQL side by side: how soon a
fired trigger reaches a receiver, how many notices a second `backout notify send`
delivers, and whether a slow or dead receiver slows the backout.

All three go through the real path: a plan with a `webhook` notify channel (Standard
Webhooks signing) routing every event to a receiver in this process, which checks each
signature with `backout.channels.webhook.verify` and stamps each arrival.

1. Latency. N times: `backout watch` of a plan whose trigger fires on its first reading
   (a `command` telemetry source printing 9, `threshold: {above: 5}`), inside
   `with Courier(store, actor):` as the CLI runs it (`live_progress`). Latency is the
   receiver's arrival time of `trigger.fired` minus the `at` of the journal's
   `trigger_fired` event, and the same for `run.backed_out` against `run_finished`. The
   watch starts a random fraction of the courier's poll after the courier, so that the
   trigger fires at any moment of the poll, as it does in a watch of minutes. The same is
   measured in N/2 more watches, interleaved, with the courier's poll patched from 0.1 s
   to 0.01 s (what-if): the difference is the poll's share.
2. Throughput. A backlog of K notices (4 per run, 100 per transaction) is queued through
   `backout.notify.hook.queue_notice` (the journal hook's own function) and
   `commands.notify_send` delivers it; events/s, for a small backlog and for K.
3. Isolation. M watches per condition, in blocks of 5 taking turns, one courier per block
   (as a `backout worker` delivers while it runs): no `notify:`, a healthy receiver, one
   that answers after 2 s, one that refuses connections. The backout's own duration
   (`trigger_fired` → `run_finished`, from the journal) per condition.

    .venv/bin/python bench/notify.py [--runs 100] [--backlog 500] [--isolation-runs 15]
    .venv/bin/python bench/notify.py --quick      # 20 runs, backlog 300, 5 per condition

Needs PostgreSQL at BACKOUT_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test);
a database of its own is created and dropped. Exits 1 on an error (a run that did not
back out, a notice lost, doubled or badly signed), never because of a timing.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import select, update

import backout.notify.courier as courier_module
from backout import commands
from backout.channels.webhook import Webhook, WebhookOptions, verify
from backout.notify import Courier
from backout.notify.hook import queue_notice, sending_context
from backout.plans import load_plan
from backout.settings import Settings
from backout.store.models import OutboxRow
from backout.store.outbox import UNSENT

PG_ADMIN = os.environ.get("BACKOUT_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
SECRET_ENV = "BACKOUT_BENCH_HOOK_SECRET"
SECRET = "whsec_" + base64.b64encode(b"backout-bench-notify-signing-key").decode()
SMALL_BACKLOG = 100
SLOW_S = 2.0
PER_RUN = 4  # queued notices per run in the throughput backlog
BATCH = 100  # queued notices per transaction
BLOCK = 5  # isolation: watches per block; the conditions take turns


class BenchError(Exception):
    """Something went wrong (not slow): the bench exits 1."""


@dataclass
class Arrival:
    event: str
    run_id: str
    at: float


@dataclass
class Receiver:
    """A signed-webhook receiver on a free local port: verifies, stamps and records each
    delivery; answers 204 after ``delay`` seconds (keep-alive, as a real one would)."""

    delay: float = 0.0
    url: str = ""
    arrivals: dict[str, Arrival] = field(default_factory=dict)  # by webhook-id
    problems: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def first(self, run_id: str, event: str, timeout: float = 30.0) -> float:
        """When ``event`` of ``run_id`` arrived (waits up to ``timeout`` for it)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                times = [
                    a.at for a in self.arrivals.values() if (a.run_id, a.event) == (run_id, event)
                ]
                if times:
                    return min(times)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"{event} of run {run_id} never reached the receiver")
                self.changed.wait(left)

    def count(self) -> int:
        with self.changed:
            return len(self.arrivals)


@contextmanager
def receiving(delay: float = 0.0) -> Iterator[Receiver]:
    receiver = Receiver(delay)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            at = time.time()
            try:
                verify(os.environ[SECRET_ENV], dict(self.headers.items()), body)
                envelope = json.loads(body)
                arrival = Arrival(envelope["type"], envelope["data"]["run_id"], at)
            except (ValueError, KeyError) as exc:
                with receiver.changed:
                    receiver.problems.append(f"refused: {exc}")
                self._answer(401)
                return
            with receiver.changed:
                key = self.headers["webhook-id"]
                if key in receiver.arrivals:
                    receiver.problems.append(f"{key} arrived twice")
                receiver.arrivals[key] = arrival
                receiver.changed.notify_all()
            if receiver.delay:
                time.sleep(receiver.delay)
            self._answer(204)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    if receiver.problems:
        raise BenchError(f"receiver: {'; '.join(receiver.problems[:3])}")


def refused_url() -> str:
    """A local URL where nothing listens: a receiver that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/hook"


def write_plan(folder: Path, name: str, url: str | None, channel: str = "feed") -> Path:
    """A watch whose trigger fires on its first reading (100 ms in), backed out by one
    step; every event goes to the webhook ``channel`` at ``url`` (no `notify:` without
    one)."""
    notify = (
        f"notify:\n  channels:\n    {channel}:\n"
        f'      webhook: {{url: "{url}", secrets: ["{{{{ secrets.hook_secret }}}}"]}}\n'
        f'  routes:\n    - events: ["*"]\n      to: [{channel}]\n'
        if url
        else ""
    )
    plan = folder / f"{name}.yaml"
    plan.write_text(
        "plan: bench-notify\nservice: bench\nrisk: high\n"
        f"secrets:\n  hook_secret: {{env: {SECRET_ENV}}}\n"
        'telemetry:\n  errors:\n    command: [echo, "9"]\n    interval: 100ms\n'
        "triggers:\n  - name: errors above 5\n    signal: errors\n    threshold: {above: 5}\n"
        'steps:\n  - name: switch back\n    run: ["true"]\n' + notify
    )
    return plan


def watch(caller: commands.Caller, plan: Path) -> tuple[str, dict[str, float]]:
    """One watch that backs out: its run id, and its journal's times by event kind (the
    first of each kind)."""
    report = commands.watch(caller, plan, 30)
    if report.result != "backed_out":
        raise BenchError(f"run {report.run_id}: {report.result} ({report.message})")
    times: dict[str, float] = {}
    for event in commands.journal(caller, report.run_id):
        times.setdefault(str(event.kind), event.at)
    return report.run_id, times


@dataclass
class Latency:
    fired: list[float] = field(default_factory=list)
    backed_out: list[float] = field(default_factory=list)


def latency(
    caller: commands.Caller, plan: Path, receiver: Receiver, runs: int, seed: int
) -> tuple[Latency, Latency]:
    """``runs`` watches, each its own command with its own courier, as shipped (polling
    every 0.1 s); interleaved with them, ``runs // 2`` with the poll patched to a tenth."""
    shuffle = random.Random(seed)
    shipped = courier_module.POLL_S
    results = {shipped: Latency(), shipped / 10: Latency()}
    schedule = [shipped if i % 3 else shipped / 10 for i in range(runs + runs // 2)]
    try:
        for poll in schedule:
            courier_module.POLL_S = poll
            with Courier(caller.store, caller.actor) as courier:
                time.sleep(shuffle.uniform(0, poll))  # fire at any moment of the poll
                run_id, times = watch(caller, plan)
            if courier.leftover.pending:
                raise BenchError(f"not delivered: {courier.leftover}")
            fired = receiver.first(run_id, "trigger.fired")
            backed_out = receiver.first(run_id, "run.backed_out")
            results[poll].fired.append(fired - times["trigger_fired"])
            results[poll].backed_out.append(backed_out - times["run_finished"])
    finally:
        courier_module.POLL_S = shipped
    return results[shipped], results[shipped / 10]


def throughput(caller: commands.Caller, plan: Path, receiver: Receiver, size: int) -> float:
    """Queue ``size`` notices through the journal hook's function, then time `notify send`
    delivering them; events per second."""
    loaded = load_plan(plan)
    notify = loaded.plan.notify
    assert notify is not None
    context = sending_context(loaded.plan.secrets, loaded.base_dir, {})
    with caller.store.session() as session:
        payload = session.scalars(
            select(OutboxRow.payload).where(OutboxRow.event == "trigger.fired").limit(1)
        ).one()
    notice = payload["notice"]  # a real trigger.fired notice, as the hook composed it
    tag = uuid.uuid4().hex[:8]
    for start in range(0, size, BATCH):
        with caller.store.session() as session:
            for i in range(start, min(start + BATCH, size)):
                run_id = f"{tag}{i // PER_RUN:06d}"
                key = f"backout-notify-feed-run-{run_id}-{i % PER_RUN}"
                queue_notice(
                    session, notify, "feed", {**notice, "run_id": run_id}, context, key, run_id
                )
    before = receiver.count()
    started = time.perf_counter()
    report = commands.notify_send(caller, timeout=1800)
    elapsed = time.perf_counter() - started
    if (report.sent, report.pending, report.dead) != (size, 0, 0) or report.errors:
        raise BenchError(f"notify send of {size}: {report.to_json()}")
    if receiver.count() - before != size:
        raise BenchError(f"{size} sent, {receiver.count() - before} received")
    return size / elapsed


@dataclass
class Isolation:
    backout: list[float] = field(default_factory=list)  # trigger_fired -> run_finished
    run: list[float] = field(default_factory=list)  # run_created -> run_finished


def isolation(
    caller: commands.Caller, plans: dict[str, Path], runs: int, slow: Receiver
) -> dict[str, Isolation]:
    """``runs`` watches per condition, in blocks of ``BLOCK`` taking turns (so that other
    load on the machine falls on every condition alike); one courier per block, as a
    `backout worker` delivers while it runs one run after another."""
    results = {condition: Isolation() for condition in plans}
    for start in range(0, runs, BLOCK):
        for condition, plan in plans.items():
            with Courier(caller.store, caller.actor, flush=0.0):
                for _ in range(min(BLOCK, runs - start)):
                    _, times = watch(caller, plan)
                    results[condition].backout.append(
                        times["run_finished"] - times["trigger_fired"]
                    )
                    results[condition].run.append(times["run_finished"] - times["run_created"])
                slow.delay = 0.0  # the courier's last pass drains the slow one's backlog
            slow.delay = SLOW_S
            with caller.store.session() as session:  # the down receiver's rows would be
                session.execute(  # retried by the next block's courier: give them up
                    update(OutboxRow)
                    .where(OutboxRow.route == "notify:down", OutboxRow.status.in_(UNSENT))
                    .values(status="dead")
                )
    return results


@dataclass
class StoreResult:
    latency: Latency
    latency_fast_poll: Latency
    throughput: dict[int, float]
    isolation: dict[str, Isolation]


def bench_store(url: str, args: argparse.Namespace) -> StoreResult:
    folder = Path(tempfile.mkdtemp(prefix="backout-bench-notify-")).resolve()
    caller = commands.Caller.of(Settings(database_url=url, actor="bench"))
    try:
        with receiving() as receiver, receiving(SLOW_S) as slow:
            plan = write_plan(folder, "healthy", receiver.url)
            with Courier(caller.store, caller.actor):
                watch(caller, plan)  # warm-up: the store's schema, first imports
            measured, fast = latency(caller, plan, receiver, args.runs, args.seed)
            rates = {n: throughput(caller, plan, receiver, n) for n in args.sizes}
            plans = {
                "no notify:": write_plan(folder, "quiet", None),
                "receiver healthy": plan,
                f"receiver slow ({SLOW_S:g} s an answer)": write_plan(
                    folder, "slow", slow.url, "slow"
                ),
                "receiver down (refused)": write_plan(folder, "down", refused_url(), "down"),
            }
            conditions = isolation(caller, plans, args.iso, slow)
        return StoreResult(measured, fast, rates, conditions)
    finally:
        caller.store.dispose()
        shutil.rmtree(folder, ignore_errors=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def open_cost() -> float:
    """Median seconds to open the webhook channel (its httpx client): paid once per courier
    pass that delivers anything."""
    options = WebhookOptions(url="http://127.0.0.1:9/hook", secrets=[SECRET])
    took = []
    for _ in range(20):
        started = time.perf_counter()
        Webhook().open(options).close()
        took.append(time.perf_counter() - started)
    return statistics.median(took)


def report(results: dict[str, StoreResult], args: argparse.Namespace, wall: float) -> None:
    stores = list(results)
    poll = courier_module.POLL_S
    ms = 1000.0
    print(
        f"notifications: signed webhook to a local receiver; {args.runs} watches per store "
        f"(+{args.runs // 2} with the poll patched), backlogs "
        f"{' and '.join(str(n) for n in args.sizes)}, {args.iso} watches per condition "
        f"({wall:.0f} s)"
    )
    print()
    head = "".join(f"{s + ' p50':>16}{s + ' p99':>16}" for s in stores)
    print(f"{'latency (ms)':<44}{head}")
    rows = [
        (f"trigger_fired -> trigger.fired, poll {poll:g} s", "latency", "fired"),
        (f"run_finished -> run.backed_out, poll {poll:g} s", "latency", "backed_out"),
        (f"trigger_fired -> trigger.fired, poll {poll / 10:g} s *", "latency_fast_poll", "fired"),
        (
            f"run_finished -> run.backed_out, poll {poll / 10:g} s *",
            "latency_fast_poll",
            "backed_out",
        ),
    ]
    for label, which, kind in rows:
        cells = ""
        for result in results.values():
            values = getattr(getattr(result, which), kind)
            cells += f"{percentile(values, 0.5) * ms:>16.1f}{percentile(values, 0.99) * ms:>16.1f}"
        print(f"{label:<44}{cells}")
    print(f"* the courier's poll patched in-process (what-if); the shipped poll is {poll:g} s")
    print(
        f"opening the webhook channel (httpx client), once per courier: {open_cost() * ms:.1f} ms"
    )
    print()
    print(f"{'throughput: notify send (events/s)':<44}" + "".join(f"{s:>16}" for s in stores))
    for size in args.sizes:
        cells = "".join(f"{r.throughput[size]:>16.0f}" for r in results.values())
        print(f"{'backlog of ' + str(size):<44}{cells}")
    print()
    print(f"backout's own duration, trigger_fired -> run_finished (ms), {args.iso} watches each")
    head = "".join(f"{s + ' p50':>16}{'p90':>8}{'ratio':>8}" for s in stores)
    print(f"{'':<44}{head}{'whole run p50':>16}")
    for condition in next(iter(results.values())).isolation:
        cells, whole = "", []
        for result in results.values():
            healthy = statistics.median(result.isolation["receiver healthy"].backout)
            durations = result.isolation[condition]
            median = statistics.median(durations.backout)
            p90 = percentile(durations.backout, 0.9)
            cells += f"{median * ms:>16.1f}{p90 * ms:>8.1f}{median / healthy:>7.2f}x"
            whole.append(f"{statistics.median(durations.run) * ms:.0f}")
        print(f"{condition:<44}{cells}{' / '.join(whole):>16}")
    print(
        f"ratio: p50 against the healthy receiver's; whole run: run_created -> run_finished, "
        f"{' / '.join(stores)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--runs", type=int, default=100, help="watches per store and poll")
    parser.add_argument("--backlog", type=int, default=500, help="notices in the big backlog")
    parser.add_argument("--isolation-runs", dest="iso", type=int, default=15)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--quick", action="store_true", help="--runs 20 --backlog 300, 5 per condition"
    )
    args = parser.parse_args()
    if args.quick:
        args.runs, args.backlog, args.iso = 20, 300, 5
    args.sizes = sorted({SMALL_BACKLOG, args.backlog})
    os.environ[SECRET_ENV] = SECRET
    name = f"backout_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    store = Path(tempfile.mkdtemp(prefix="backout-bench-store-"))
    started = time.perf_counter()
    try:
        results = {
            "SQLite": bench_store(f"sqlite:///{store / 'bench.db'}", args),
            "PostgreSQL": bench_store(f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}", args),
        }
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    finally:
        shutil.rmtree(store, ignore_errors=True)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    report(results, args, time.perf_counter() - started)


if __name__ == "__main__":
    main()
