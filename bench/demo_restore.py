"""How fast the demo's bad release is detected and restored: `backout demo --json` run
several times, median `detected_after_s` (fault start to the plan's trigger firing) and
`restored_after_s` (fault start to verified), and which trigger fired.

    .venv/bin/python bench/demo_restore.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections import Counter


def one() -> dict[str, float | str]:
    done = subprocess.run(
        [sys.executable, "-m", "backout", "demo", "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"demo failed ({done.returncode}): {done.stderr[-2000:]}")
    result = json.loads(done.stdout)
    trigger = result["trigger"]
    return {
        "detected": float(result["detected_after_s"]),
        "restored": float(result["restored_after_s"]),
        "trigger": f"{trigger['name']!r} ({trigger['kind']})",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    results = [one() for _ in range(args.runs)]
    detected = [float(r["detected"]) for r in results]
    restored = [float(r["restored"]) for r in results]
    print(f"backout demo, {args.runs} runs")
    print(f"{'':<22}{'median':>9}{'min':>9}{'max':>9}")
    for label, values in (("detected after (s)", detected), ("restored after (s)", restored)):
        print(f"{label:<22}{statistics.median(values):>9.2f}{min(values):>9.2f}{max(values):>9.2f}")
    for trigger, count in Counter(str(r["trigger"]) for r in results).most_common():
        print(f"fired: {trigger} in {count} of {args.runs} runs")
    print(
        "aim: restored and verified under 10 s from fault start — "
        + ("met" if statistics.median(restored) < 10 else "NOT met")
    )


if __name__ == "__main__":
    main()
