"""Lay out the demo's folder: two releases, a ``current`` symlink, a config, a restart script
and the plan (copied verbatim, so its relative paths resolve here)."""

from __future__ import annotations

import json
import os
import sys
from importlib.resources import files
from pathlib import Path

PLAN_NAME = "backout.yaml"
RELEASES = {"v1": 0.0, "v2": 0.3}  # release -> share of requests it answers with 500
CONFIG = "# the demo service's config; its sha256 is part of the baseline\ngreeting = hello\n"


def resource(name: str) -> str:
    return (files("backout.demo") / name).read_text(encoding="utf-8")


def layout(root: Path) -> Path:
    """Write the demo folder under ``root``; return the plan's path."""
    for release, fail_share in RELEASES.items():
        _write_release(root / "releases" / release, fail_share)
    os.symlink("v1", root / "releases" / "current")
    (root / "etc").mkdir()
    (root / "etc" / "demo.conf").write_text(CONFIG)
    _write_restart(root / "bin" / "restart")
    plan = root / PLAN_NAME
    plan.write_text(resource("plan.yaml"), encoding="utf-8")
    return plan


def _write_release(folder: Path, fail_share: float) -> None:
    folder.mkdir(parents=True)
    (folder / "service.py").write_text(resource("service.py"), encoding="utf-8")
    (folder / "release.json").write_text(json.dumps({"fail_share": fail_share}) + "\n")


def _write_restart(path: Path) -> None:
    """The restart script runs with this interpreter (its shebang names sys.executable)."""
    path.parent.mkdir()
    body = resource("restart.py").split("\n", 1)[1]
    path.write_text(f"#!{sys.executable}\n{body}", encoding="utf-8")
    path.chmod(0o755)
