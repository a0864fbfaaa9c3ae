"""Steps that do something: 20 steps of `sleep 0.1` under `backout run`, next to bash running
the same 20 commands (and `ansible-playbook` running them as 20 tasks, with ``--ansible``),
measured side by side in one run.

    .venv/bin/python bench/steps_vs_bash.py [--steps 20] [--repeat 7] [--postgres] [--ansible]
        [--compare SRC]

Each round runs, interleaved, a 1-step and a (1 + N)-step version of each; the time of a
step is the median over rounds of (long - short) / N, so start-up cancels out. The ratio is
backout's time per step over bash's: 1.00x would mean journalling a step (durably, before
and after) and running it under its shim cost nothing next to the command itself.
``--ansible`` installs ansible-core into an environment of its own the first time
(``~/.cache/backout-bench/ansible``; PyPI must be reachable then, else it is skipped).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from contextlib import ExitStack
from pathlib import Path

from ansible_bench import ansible_pair
from engine_overhead import COMPARE_HELP, backout_pair, interleave, shell_pair, store_envs

COMMAND = ["sleep", "0.1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="steps of the long run, minus 1")
    parser.add_argument("--repeat", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL")
    parser.add_argument("--ansible", action="store_true", help="also ansible-playbook")
    parser.add_argument("--compare", metavar="SRC", help=COMPARE_HELP)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="backout-bench-"))
    with ExitStack() as stack:
        stores = store_envs(stack, args.postgres, args.compare)
        pairs = [
            # as a person runs it: progress lines, the summary table at the end
            (backout_pair(f"backout, {store}", folder, COMMAND, args.steps, shown=True), env)
            for store, env in stores
        ]
        plain = {**os.environ}
        pairs.append((shell_pair("bash", folder, COMMAND, args.steps, shell="bash"), plain))
        if args.ansible and (pair := ansible_pair(folder, COMMAND, args.steps)) is not None:
            pairs.append((pair, {**plain, "ANSIBLE_LOCAL_TEMP": str(folder / "ansible-tmp")}))
        interleave(pairs, folder, args.repeat)
    bash = next(pair for pair, _ in pairs if pair.label == "bash").per_step_s
    print(
        f"time per `{' '.join(COMMAND)}` step: 1-step vs {1 + args.steps}-step runs, "
        f"median of {args.repeat} interleaved rounds"
    )
    width = max(len(pair.label) for pair, _ in pairs) + 2
    print(f"{'':<{width}}{'per step':>11}{'x bash':>9}{'long run':>10}")
    for pair, _ in pairs:
        print(
            f"{pair.label:<{width}}{pair.per_step_s * 1000:>8.1f} ms"
            f"{pair.per_step_s / bash:>8.3f}x{pair.long_median_s:>9.2f}s"
        )


if __name__ == "__main__":
    main()
