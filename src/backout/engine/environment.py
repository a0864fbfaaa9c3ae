"""What a run's templates and processes can see: baseline, run, secrets, env."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backout.kernel.options import Context
from backout.redact import Redactor
from backout.spec.templating import render_value


@dataclass(frozen=True)
class RunEnvironment:
    base_dir: Path
    baseline: dict[str, str]
    secrets: dict[str, str]
    run: dict[str, str] = field(default_factory=dict)
    change: dict[str, Any] = field(default_factory=dict)
    store_url: str | None = None
    environment: dict[str, str] = field(default_factory=dict)  # --env's values and name

    @property
    def redactor(self) -> Redactor:
        return Redactor(self.secrets.values())

    def scope(self) -> dict[str, Any]:
        """What templates see. The sandbox refuses changes; these copies make sure no
        render (or a bug in a caller) can change what the next step or check reads."""
        return {
            "baseline": dict(self.baseline),
            "run": dict(self.run),
            "change": copy.deepcopy(self.change),
            "env": dict(os.environ),
            "secrets": dict(self.secrets),
            "environment": dict(self.environment),
        }

    def render(self, options: Any, templated: bool = True) -> Any:
        """A step's or check's options as it will see them: rendered in the run's scope,
        unless its kind is never templated (``shell:``). The one renderer: the engine and
        the dry run both use it. Raises TemplateError."""
        return render_value(options, self.scope()) if templated else options

    def process_env(self) -> dict[str, str]:
        """Values for processes, as BACKOUT_* variables: the only way into a shell script."""
        env = {f"BACKOUT_RUN_{key.upper()}": value for key, value in self.run.items()}
        env.update({f"BACKOUT_BASELINE_{k.upper()}": v for k, v in self.baseline.items()})
        env.update({f"BACKOUT_SECRET_{k.upper()}": v for k, v in self.secrets.items()})
        env.update({f"BACKOUT_ENVIRONMENT_{k.upper()}": v for k, v in self.environment.items()})
        return env

    def context(self, timeout: float, redactor: Redactor) -> Context:
        return Context(
            self.base_dir,
            timeout,
            self.process_env(),
            redactor,
            self.store_url,
            self.run.get("actor"),
        )
