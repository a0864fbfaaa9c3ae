"""Start-up: how long the commands a user types most often take before they do anything,
next to a bare `python -c pass` (the floor no Python program can go under).

    .venv/bin/python bench/startup.py [--rounds 15]

Every round runs each command once, in turn (interleaved, so load on a shared machine
weighs on all of them alike); the medians are printed in milliseconds, with the ratio to
`python -c pass`, and the median CPU time (user + system) each took: on a busy machine the
wall time includes waiting for a core, the CPU time does not. The environment is the
caller's: run it with and without PYTHONDONTWRITEBYTECODE=1 to see what byte-compiling
the install saves.

``--baseline SRC`` (a ``src`` folder of another checkout, byte-compiled: ``git archive REV
src | tar -x -C /tmp/before && python -m compileall -q /tmp/before/src``) runs each
command of that code too (put first on ``PYTHONPATH``), alternating with this one's.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def commands() -> dict[str, list[str]]:
    backout = str(BIN / "backout")
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "backout --version": [backout, "--version"],
        "backout --help": [backout, "--help"],
        "backout validate examples/demo.yaml": [backout, "validate", "examples/demo.yaml"],
        "backout status --help": [backout, "status", "--help"],
        "backout change --help": [backout, "change", "--help"],
        "backout deploy --help": [backout, "deploy", "--help"],
    }


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def once(argv: list[str], source: str | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run (of the backout in ``source``, if given)."""
    env = {**os.environ, "PYTHONPATH": source} if source else None
    cpu = cpu_of_children()
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()}")
    return took, cpu_of_children() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="runs of each command")
    parser.add_argument("--baseline", metavar="SRC", help="also the backout in SRC, alternating")
    args = parser.parse_args()
    rounds = args.rounds
    sources: dict[str, str | None] = {"": None}
    if args.baseline:
        sources = {"(baseline) ": str(Path(args.baseline).resolve()), "": None}
    table = {
        label + name: (argv, source)
        for name, argv in commands().items()
        for label, source in sources.items()
        if not (label and name == "python -c pass")
    }
    for argv, source in table.values():  # a first run of each, not counted: warm caches
        once(argv, source)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in table}
    for _ in range(rounds):
        for name, (argv, source) in table.items():
            times[name].append(once(argv, source))
    floor = statistics.median(wall for wall, _ in times["python -c pass"])
    bytecode = "off" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "on"
    print(f"{rounds} interleaved rounds, medians; writing bytecode {bytecode}")
    print(f"{'command':<49} {'ms':>7} {'python -c pass = 1':>19} {'cpu ms':>7}")
    for name, samples in times.items():
        wall = statistics.median(w for w, _ in samples)
        cpu = statistics.median(c for _, c in samples)
        print(f"{name:<49} {wall * 1000:>7.1f} {wall / floor:>19.1f} {cpu * 1000:>7.1f}")


if __name__ == "__main__":
    main()
