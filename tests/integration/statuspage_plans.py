"""Plans for the status page tests: a service whose error signal is a file the test (or a
rehearsal's break) writes, a trigger on it, and a backout that clears it (or fails)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from backout.settings import Settings

CLEAR = "echo 0 > errors.txt"
FAIL = "exit 1"


def settings(url: str, actor: str = "oncall") -> Settings:
    return Settings(database_url=url, actor=actor, lease_ttl=5.0)


def write_plan(
    folder: Path,
    name: str = "shop",
    risk: str = "high",
    section: str = "",
    step: str = CLEAR,
    errors: int = 50,
) -> Path:
    """The plan ``name`` in ``folder/name``; ``section`` is its `status_page:` (YAML)."""
    home = folder / name
    home.mkdir(parents=True, exist_ok=True)
    (home / "errors.txt").write_text(f"{errors}\n")
    plan = home / "plan.yaml"
    plan.write_text(
        textwrap.dedent(f"""\
        plan: {name}
        service: {name}
        risk: {risk}
        telemetry:
          errors:
            command: [cat, errors.txt]
            interval: 100ms
        triggers:
          - name: errors above 5
            signal: errors
            threshold: {{above: 5}}
        steps:
          - name: back to the last good release
            run: [sh, -c, "{step}"]
            timeout: 5s
        rehearsal:
          break:
            - name: ship the bad build
              run: [sh, -c, "echo 50 > errors.txt"]
              undo: {{run: [sh, -c, "echo 0 > errors.txt"]}}
          detect_within: 10s
        """)
        + section
    )
    return plan
