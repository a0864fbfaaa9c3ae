"""scipy loads only for the rules that need it (the sequential test, the judge): a process
watching a fleet of threshold triggers never pays its second of start-up or its memory."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
from backout.triggers.kinds import TRIGGERS, Baseline
for kind, options in (("threshold", {"above": 0.1}), ("relative", {"worse_by": "50%"})):
    k = TRIGGERS.get(kind)
    baseline = Baseline()
    try:
        k.build(k.Options.model_validate(options), "t", "s", baseline)
    except Exception as exc:  # a relative trigger with no baseline: refused, still no scipy
        pass
assert "scipy" not in sys.modules, "a threshold or relative trigger loaded scipy"
k = TRIGGERS.get("sequential")
k.build(k.Options.model_validate({"baseline_rate": 0.01}), "t", "s", Baseline())
assert "scipy" in sys.modules, "the sequential test needs scipy and did not load it"
print("ok")
"""


def test_threshold_triggers_do_not_load_scipy_and_the_sequential_test_does() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
