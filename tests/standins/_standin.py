"""What the stand-ins share: each records its argv (one JSON line in $STANDIN_LOG) and keeps
the world it pretends to manage in a JSON file ($STANDIN_STATE) that the test writes first
and reads afterwards. Not an executable: the stand-ins import it from their own folder."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def record(tool: str) -> list[str]:
    args = sys.argv[1:]
    log = os.environ.get("STANDIN_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as out:
            out.write(json.dumps([tool, *args]) + "\n")
    return args


def load() -> dict[str, Any]:
    return json.loads(Path(os.environ["STANDIN_STATE"]).read_text(encoding="utf-8"))


def save(state: dict[str, Any]) -> None:
    Path(os.environ["STANDIN_STATE"]).write_text(json.dumps(state, indent=1), encoding="utf-8")


def flag(args: list[str], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE``."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def fail(message: str, code: int = 1) -> None:
    print(message, file=sys.stderr)
    sys.exit(code)


def emit(data: Any) -> None:
    print(json.dumps(data, indent=4))
