"""The five-step plan the crash tests (and bench/crash_resume.py) kill at every boundary.

Every step appends its number to ``side-effects.txt``. Steps 1, 3 and 5 are idempotent,
2 and 4 are not. ``SLOW_STEP=N`` makes step N write its shell's pid to ``inside-N`` and then
sleep, so a test can SIGKILL the runner from outside while that step is running.
"""

from __future__ import annotations

from pathlib import Path

SIDE_EFFECTS = "side-effects.txt"
IDEMPOTENT = {1: True, 2: False, 3: True, 4: False, 5: True}

STEP = """  - name: step {n}
    run: [sh, -c, 'echo {n} >> {side}; [ "$SLOW_STEP" != {n} ] || (echo $$ > inside-{n}; sleep 30)']
    timeout: 60s
    idempotent: {idempotent}
"""


def write(folder: Path, service: str = "crashy") -> Path:
    steps = "".join(
        STEP.format(n=n, side=SIDE_EFFECTS, idempotent=str(i).lower())
        for n, i in IDEMPOTENT.items()
    )
    plan = folder / "plan.yaml"
    plan.write_text(
        f"plan: crash-test\nservice: {service}\nsteps:\n{steps}"
        f"verify:\n  - name: every step left its mark\n"
        f"    command: [grep, -qx, '5', {SIDE_EFFECTS}]\n"
    )
    return plan


def side_effects(folder: Path) -> list[int]:
    path = folder / SIDE_EFFECTS
    return [int(line) for line in path.read_text().split()] if path.exists() else []
