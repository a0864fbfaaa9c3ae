"""Option types shared by every kind a plan names: actions, checks, baseline sources,
telemetry sources and triggers. They live here, not with the actions, so that a probe or a
telemetry source can run a program the way a step does without importing the actions."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Options(BaseModel):
    """Base for action/check/source options: closed and immutable. Built on first use
    (``defer_build``): loading a plan builds the options of the kinds it names, not all."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class ArgvOptions(Options):
    """Options of anything that runs a program: an argv list (or just the list), no shell."""

    argv: list[str] = Field(min_length=1, description="Program and arguments, no shell.")
    cwd: str | None = Field(None, description="Working folder (relative to the plan file).")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {"argv": value}
        if isinstance(value, str):
            raise ValueError(
                f"takes a list [program, arg, ...], not a string; write "
                f"{shlex.split(value)!r}, or use a `shell:` step if you need a "
                "shell"
            )
        return value


@dataclass(frozen=True)
class Context:
    """What an action may use: where it runs, its time budget, its environment."""

    workdir: Path
    timeout: float
    env: Mapping[str, str] = field(default_factory=dict)
    redact: Callable[[str], str] = str
    store_url: str | None = None  # the run's store (actions that keep state there: flag)
    actor: str | None = None  # who started the run


def resolve(workdir: Path, path: str) -> Path:
    """Relative paths in plans resolve against the plan file's folder."""
    candidate = Path(path)
    return candidate if candidate.is_absolute() else workdir / candidate


def resolve_program(argv: list[str], workdir: Path) -> list[str]:
    """``./bin/x`` and ``bin/x`` are relative to the plan file; bare names use PATH."""
    program = argv[0]
    if "/" in program and not program.startswith("/"):
        return [str(resolve(workdir, program)), *argv[1:]]
    return argv
