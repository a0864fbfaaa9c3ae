"""How fast each trigger notices a regression, and how often it cries wolf, on the same traces.

    .venv/bin/python bench/detection.py [--aa 200] [--faults 100] [--seed 7] [--jobs 2]

Synthetic traffic, replayed as one reading per second. Each trace has a canary (the new
version) and a baseline (the stable version, served alongside it) at ~50 requests/s
each (Poisson), each request failing with probability 1% (Bernoulli) and taking a
lognormal time (median 100 ms, p99 ~320 ms). Five minutes of stable traffic before the
deploy are the baseline snapshot. The watch lasts 10 minutes from the deploy. In fault
traces the canary turns bad at a random moment between 60 s and 120 s after the deploy
(random, so that no periodic checker gets a lucky alignment): error ratio 1% -> 5%,
1% -> 2%, or every latency x1.3 (p99 +30%). A/A traces never change.

Every detector sees the same traces:

* threshold + for: the 1-second value above a limit for 10 s (``threshold: {above, for}``)
* sequential: the mixture SPRT, tolerance 20%, alpha 1%, with the baseline rate given
  (``baseline_rate: 0.01``; for latency, the true p99) or measured from the snapshot
* judge: Mann-Whitney, canary vs baseline over the last 60 s, once a minute, tolerance 10%
* Flagger: a check every 60 s over the last minute, rollback after 5 failed checks
* Argo Rollouts: a measurement every 60 s over the last minute, failureLimit 0

The limit for threshold, Flagger and Argo is the same: error ratio 1.5% (the baseline
+50%), p99 latency 1.15 x the baseline p99 (half the injected shift).

Prints the median time from the fault to the detector's fail verdict (over the fault
traces it caught; "caught" is how many), and the share of A/A traces with any fail.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from backout.telemetry import Reading
from backout.telemetry.detectors import (
    ArgoRule,
    Detector,
    FlaggerRule,
    MannWhitneyJudge,
    Sequential,
    Threshold,
)

RATE = 50.0  # requests per second, per version
ERROR_RATE = 0.01
LATENCY_MU, LATENCY_SIGMA = math.log(0.1), 0.5
TRUE_P99 = math.exp(LATENCY_MU + 2.3263478740408408 * LATENCY_SIGMA)
PRE_S, WATCH_S = 300, 600
ERROR_LIMIT = 0.015
LATENCY_LIMIT = 1.15 * TRUE_P99


@dataclass(frozen=True)
class Scenario:
    name: str
    signal: str  # "errors" or "latency"
    error_after: float = ERROR_RATE
    latency_factor: float = 1.0
    faulty: bool = True


SCENARIOS = [
    Scenario("errors 1% -> 5%", "errors", error_after=0.05),
    Scenario("errors 1% -> 2%", "errors", error_after=0.02),
    Scenario("p99 latency +30%", "latency", latency_factor=1.3),
    Scenario("A/A errors", "errors", faulty=False),
    Scenario("A/A latency", "latency", faulty=False),
]


@dataclass(frozen=True)
class Second:
    canary: Reading
    baseline: Reading


def traffic(
    rng: np.random.Generator,
    seconds: int,
    error: Callable[[int], float],
    slow: Callable[[int], float],
) -> Iterator[tuple[int, int, np.ndarray]]:
    """(requests, errors, latencies) for each second; ``error``/``slow`` give the error
    probability and latency factor in second ``t`` (already mixed across an onset)."""
    requests = rng.poisson(RATE, seconds)
    errors = rng.binomial(requests, [error(t) for t in range(seconds)])
    factors = np.repeat([slow(t) for t in range(seconds)], requests)
    latencies = rng.lognormal(LATENCY_MU, LATENCY_SIGMA, int(requests.sum())) * factors
    splits = np.split(latencies, np.cumsum(requests)[:-1])
    yield from zip(requests.tolist(), errors.tolist(), splits, strict=True)


def reading(at: float, signal: str, n: int, k: int, latencies: np.ndarray) -> Reading:
    if n == 0:
        return Reading(at=at, status="no_data", detail="no request in this second")
    if signal == "errors":
        return Reading(at=at, status="ok", value=k / n, events=k, trials=n)
    return Reading(at=at, status="ok", value=p99(latencies), samples=tuple(latencies.tolist()))


def p99(values: np.ndarray) -> float:
    """np.quantile's default (linear) rule, without its overhead: it runs 600 000 times."""
    ordered = np.sort(values)
    position = (ordered.size - 1) * 0.99
    low = int(position)
    high = min(low + 1, ordered.size - 1)
    return float(ordered[low] + (position - low) * (ordered[high] - ordered[low]))


def mixed(before: float, after: float, onset: float) -> Callable[[int], float]:
    """The value during second [t, t+1): the share of it after the onset is ``after``."""

    def at(t: int) -> float:
        share = min(1.0, max(0.0, t + 1 - onset))
        return before + (after - before) * share

    return at


def healthy(t: int) -> float:
    return ERROR_RATE


def unchanged(t: int) -> float:
    return 1.0


def trace(scenario: Scenario, rng: np.random.Generator) -> tuple[float, Reading, list[Second]]:
    """The onset, the pre-deploy snapshot (pooled) and the watch, one reading a second."""
    onset = float(rng.uniform(60, 120)) if scenario.faulty else math.inf
    pre = list(traffic(rng, PRE_S, healthy, unchanged))
    snapshot = Reading(
        at=0.0,
        status="ok",
        events=sum(k for _, k, _ in pre),
        trials=sum(n for n, _, _ in pre),
        samples=tuple(np.concatenate([lat for _, _, lat in pre]).tolist()),
    )
    error = mixed(ERROR_RATE, scenario.error_after, onset)
    slow = mixed(1.0, scenario.latency_factor, onset)
    canary = traffic(rng, WATCH_S, error, slow)
    baseline = traffic(rng, WATCH_S, healthy, unchanged)
    seconds = [
        Second(reading(t + 1.0, scenario.signal, *c), reading(t + 1.0, scenario.signal, *b))
        for t, (c, b) in enumerate(zip(canary, baseline, strict=True))
    ]
    return onset, snapshot, seconds


def detectors(signal: str, snapshot: Reading) -> dict[str, Detector]:
    """The contenders, configured as the module docstring says."""
    judge = MannWhitneyJudge(tolerance=0.1, alpha=0.05, min_samples=50, window=60.0, every=60.0)
    if signal == "errors":
        return {
            "threshold + for 10s": Threshold(above=ERROR_LIMIT, for_s=10.0),
            "sequential (baseline given)": Sequential(ERROR_RATE, tolerance=0.2, alpha=0.01),
            "sequential (baseline measured)": Sequential.from_baseline(
                snapshot.events or 0, snapshot.trials or 0, tolerance=0.2, alpha=0.01
            ),
            "Mann-Whitney judge": judge,
            "Flagger (60s x 5)": FlaggerRule(max_value=ERROR_LIMIT, start=0.0),
            "Argo (60s, limit 0)": ArgoRule(max_value=ERROR_LIMIT, start=0.0),
        }
    return {
        "threshold + for 10s": Threshold(above=LATENCY_LIMIT, for_s=10.0),
        "sequential (baseline given)": Sequential.latency(TRUE_P99, tolerance=0.2, alpha=0.01),
        "sequential (baseline measured)": Sequential.latency_from_baseline(
            snapshot.samples, tolerance=0.2, alpha=0.01
        ),
        "Mann-Whitney judge": judge,
        "Flagger (60s x 5)": FlaggerRule(max_value=LATENCY_LIMIT, quantile=0.99, start=0.0),
        "Argo (60s, limit 0)": ArgoRule(max_value=LATENCY_LIMIT, quantile=0.99, start=0.0),
    }


@dataclass(frozen=True)
class Outcome:
    onset: float  # seconds after the deploy; inf in A/A traces
    fired: dict[str, float | None]  # first fail verdict per detector, or None


def replay(scenario: Scenario, seed: int) -> Outcome:
    """When each detector first said fail (seconds after the deploy)."""
    rng = np.random.default_rng(seed)
    onset, snapshot, seconds = trace(scenario, rng)
    fired: dict[str, float | None] = {}
    for name, detector in detectors(scenario.signal, snapshot).items():
        fired[name] = None
        judge = detector if isinstance(detector, MannWhitneyJudge) else None
        for second in seconds:
            if judge is not None:
                judge.observe_baseline(second.baseline)
            if detector.update(second.canary).verdict == "fail":
                fired[name] = second.canary.at
                break
    return Outcome(onset, fired)


def summarize(scenario: Scenario, outcomes: list[Outcome]) -> dict[str, str]:
    """A/A: the share of traces with a fail. Faults: median delay (caught / traces); a fail
    before the onset is a false alarm, not a detection."""
    cells: dict[str, str] = {}
    for name in outcomes[0].fired:
        times = [(outcome.fired[name], outcome.onset) for outcome in outcomes]
        if not scenario.faulty:
            cells[name] = f"{sum(at is not None for at, _ in times) / len(times):.1%}"
            continue
        delays = [at - onset for at, onset in times if at is not None and at >= onset]
        median = f"{statistics.median(delays):.1f} s" if delays else "never"
        cells[name] = f"{median} ({len(delays)}/{len(times)})"
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--aa", type=int, default=200, help="A/A traces per signal")
    parser.add_argument("--faults", type=int, default=100, help="fault traces per scenario")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()
    jobs = [
        (scenario, args.seed * 1_000_003 + index * 10_007 + trial)
        for index, scenario in enumerate(SCENARIOS)
        for trial in range(args.faults if scenario.faulty else args.aa)
    ]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(replay, *zip(*jobs, strict=True), chunksize=8))
    table: dict[str, dict[str, str]] = {}
    for scenario in SCENARIOS:
        outcomes = [r for (s, _), r in zip(jobs, results, strict=True) if s is scenario]
        table[scenario.name] = summarize(scenario, outcomes)
    print_table(table)
    print(f"\n{len(jobs)} traces in {time.perf_counter() - started:.0f} s")


def print_table(table: dict[str, dict[str, str]]) -> None:
    columns = list(table)
    rows = list(next(iter(table.values())))
    header = ["detector", *columns]
    lines = [[row, *(table[column][row] for column in columns)] for row in rows]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for line in lines:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")


if __name__ == "__main__":
    main()
