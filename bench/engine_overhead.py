"""What durability costs per step: the engine's cost of one more step, on SQLite and
PostgreSQL, next to a plain shell script doing the same commands, measured side by side.

    .venv/bin/python bench/engine_overhead.py [--steps 50] [--repeat 7] [--profile] [--ansible]

Each round runs, in turn (interleaved, so load on a shared machine weighs on all alike):
`backout run --json` of a 1-step and of a (1 + N)-step plan on each store, and `sh`
running the same 1 and 1 + N commands; the rows marked *shown* run `backout run` as a
person does, with a progress line as each step starts and ends and, once the run is
over, the summary table (a row a step): what that display adds a step. The steps are
`true` (the program, not sh's builtin), and, for the engine alone, `wait: {delay: 0s}` (no
process: its journal writes and the step's bookkeeping). The cost of one extra step is
the median, over rounds, of (time of the long run - time of the short run) / N: start-up,
opening the store and loading the plan cancel out. ``--profile`` also runs a (1 + N)-step
plan of `true` in this process under cProfile and prints where the time goes (the step's
own thread shows as the wait in ``with_deadline``).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from pgdb import throwaway_database

TRUE = shutil.which("true") or "/bin/true"  # the program: sh's builtin would start nothing
DB = "BACKOUT_DATABASE_URL"
PG_ADMIN = os.environ.get("BACKOUT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def write_plan(folder: Path, name: str, argv: list[str], steps: int) -> Path:
    quoted = ", ".join(f"'{arg}'" for arg in argv)
    action = f"run: [{quoted}]" if argv else "wait: {delay: 0s}"
    body = "".join(f"  - name: step {i}\n    {action}\n    timeout: 30s\n" for i in range(steps))
    plan = folder / f"{name}.yaml"
    plan.write_text(f"plan: {name}\nsteps:\n{body}")
    return plan


def write_script(folder: Path, name: str, argv: list[str], steps: int) -> Path:
    script = folder / f"{name}.sh"
    script.write_text("#!/bin/sh\nset -e\n" + f"{' '.join(argv)}\n" * steps)
    return script


COMPARE_HELP = (
    "also run the backout whose package is in SRC (e.g. an older commit: "
    "`git archive COMMIT | tar -x -C /tmp/old`, then --compare /tmp/old/src), in the same rounds"
)


Stores = list[tuple[str, dict[str, str]]]


def store_envs(stack: ExitStack, postgres: bool, compare: str | None) -> Stores:
    """(name, environment) of each store to run on: SQLite, PostgreSQL if wanted, and each
    once more run by the package in ``compare`` (on PYTHONPATH, before the installed one)
    against a store of its own (an older schema may differ)."""
    stores: Stores = []
    for source in (None, compare) if compare else (None,):
        tag = f" [{Path(source).parent.name or source}]" if source else ""
        extra = {"PYTHONPATH": source} if source else {}
        stores.append((f"SQLite{tag}", {**os.environ, **extra, DB: sqlite_url()}))
        if postgres:
            url = stack.enter_context(throwaway_database("backout_bench", PG_ADMIN))
            stores.append((f"PostgreSQL{tag}", {**os.environ, **extra, DB: url}))
    return stores


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr.decode()}")
    return took


def sqlite_url() -> str:
    return f"sqlite:///{tempfile.mkdtemp(prefix='backout-bench-db-')}/b.db"


class Pair:
    """A short and a long version of the same work, timed side by side: the cost of the
    ``extra`` steps the long one has, per step."""

    def __init__(self, label: str, short: list[str], long: list[str], extra: int) -> None:
        self.label, self.short, self.long, self.extra = label, short, long, extra
        self.short_s: list[float] = []
        self.long_s: list[float] = []

    def once(self, cwd: Path, env: dict[str, str]) -> None:
        self.short_s.append(timed(self.short, cwd, env))
        self.long_s.append(timed(self.long, cwd, env))

    @property
    def per_step_s(self) -> float:
        return statistics.median(
            (long - short) / self.extra
            for short, long in zip(self.short_s, self.long_s, strict=True)
        )

    @property
    def long_median_s(self) -> float:
        return statistics.median(self.long_s)


def interleave(pairs: list[tuple[Pair, dict[str, str]]], cwd: Path, repeat: int) -> None:
    for pair, env in pairs:  # one run of each first, not counted: creates the schemas
        pair.once(cwd, env)
        pair.short_s.clear()
        pair.long_s.clear()
    for _ in range(repeat):
        for pair, env in pairs:
            pair.once(cwd, env)


def backout_pair(
    label: str, folder: Path, argv: list[str], extra: int, shown: bool = False
) -> Pair:
    """``argv`` empty: steps that start no process. ``shown``: as a person runs it, with
    the progress lines and the summary table (a row a step, printed once the run is over);
    else ``--json``, the engine's own work."""
    kind = "run" if argv else "wait"
    short = write_plan(folder, f"short-{kind}", argv, 1)
    long = write_plan(folder, f"long-{kind}", argv, 1 + extra)
    run = [sys.executable, "-m", "backout", "run", *([] if shown else ["--json"])]
    return Pair(label, [*run, str(short)], [*run, str(long)], extra)


def shell_pair(label: str, folder: Path, argv: list[str], extra: int, shell: str = "sh") -> Pair:
    short = write_script(folder, "short", argv, 1)
    long = write_script(folder, "long", argv, 1 + extra)
    return Pair(label, [shell, str(short)], [shell, str(long)], extra)


def profile(url: str, steps: int, top: int) -> None:
    """Run a (1 + steps)-step plan in this process under cProfile; print the top entries."""
    from backout import commands
    from backout.store.db import Store

    folder = Path(tempfile.mkdtemp(prefix="backout-bench-"))
    plan = write_plan(folder, "profiled", [TRUE], 1 + steps)
    with Store(url) as store:
        caller = commands.Caller(store, actor="bench")
        commands.run(caller, plan)  # warm: schema, imports
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        commands.run(caller, plan)
        profiler.disable()
        took = time.perf_counter() - started
    print(f"\nprofile of one {1 + steps}-step run on {url.split(':')[0]}: {took:.3f}s")
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="extra steps of the long plan")
    parser.add_argument("--repeat", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--profile", action="store_true", help="also cProfile a run")
    parser.add_argument("--compare", metavar="SRC", help=COMPARE_HELP)
    parser.add_argument(
        "--ansible",
        action="store_true",
        help="also ansible-playbook running the same commands as tasks (installed into an "
        "environment of its own the first time)",
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="backout-bench-"))
    with ExitStack() as stack:
        stores = store_envs(stack, not args.no_postgres, args.compare)
        pairs = [
            (backout_pair(f"{label}, {store}", folder, argv, args.steps), env)
            for label, argv in (("true", [TRUE]), ("no process", []))
            for store, env in stores
        ]
        pairs += [  # the same, as a person sees it run: what the display adds
            (backout_pair(f"true, {store}, shown", folder, [TRUE], args.steps, True), env)
            for store, env in stores
        ]
        pairs.append((shell_pair("sh, true", folder, [TRUE], args.steps), stores[0][1]))
        if args.ansible:
            from ansible_bench import ansible_pair  # it imports this module's Pair

            if (ansible := ansible_pair(folder, [TRUE], args.steps)) is not None:
                tmp = {**os.environ, "ANSIBLE_LOCAL_TEMP": str(folder / "ansible-tmp")}
                pairs.append((ansible, tmp))
        interleave(pairs, folder, args.repeat)
        if args.profile:
            profile(stores[0][1][DB], args.steps, 30)
    shell = next(pair for pair, _ in pairs if pair.label == "sh, true").per_step_s
    print(
        f"cost of one extra step: 1-step vs {1 + args.steps}-step plans, "
        f"median of {args.repeat} interleaved rounds"
    )
    width = max(len(pair.label) for pair, _ in pairs) + 2
    print(f"{'':<{width}}{'per step':>10}{'x sh':>8}{'long run':>10}")
    for pair, _ in pairs:
        print(
            f"{pair.label:<{width}}{pair.per_step_s * 1000:>7.2f} ms"
            f"{pair.per_step_s / shell:>7.1f}x{pair.long_median_s:>9.2f}s"
        )


if __name__ == "__main__":
    main()
