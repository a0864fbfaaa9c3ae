"""Settings shared by every command: where the store is, who is acting, how long a lease
lives, and an organisation's notify defaults.

Each comes from, first to last: a command-line option, an environment variable, the
configuration file, the built-in default. The configuration file is ``--config PATH`` (or
``BACKOUT_CONFIG``); otherwise the first ``backout.toml``, or ``pyproject.toml`` with a
``[tool.backout]`` table, found from the working directory upwards::

    # backout.toml
    database_url = "postgresql://backout@db.internal:5432/backout"
    lease_ttl = "5s"
    heartbeat = "1s"
    [notify.channels.ops-chat]
    slack = {webhook_url = "{{ env.SLACK_WEBHOOK_URL }}"}
    [[notify.routes]]
    events = ["*"]
    to = ["ops-chat"]
"""

from __future__ import annotations

import getpass
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backout.errors import UsageError
from backout.kernel.durations import parse_duration
from backout.store.dialect import DEFAULT_URL

DEFAULT_LEASE_TTL = 5.0  # seconds a lease lives without a heartbeat
DEFAULT_HEARTBEAT = 1.0  # seconds between two renewals (at most a third of the lease)
CONFIG_NAME = "backout.toml"
SECONDS = ("lease_ttl", "heartbeat")  # settings given in seconds, or as a duration ("5s")


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"


def _float_env(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{name}={text!r} is not a number of seconds") from None
    if value <= 0:
        raise UsageError(f"{name} must be positive")
    return value


@dataclass(frozen=True)
class Settings:
    database_url: str = field(
        default_factory=lambda: os.environ.get("BACKOUT_DATABASE_URL") or DEFAULT_URL
    )
    actor: str = field(default_factory=lambda: os.environ.get("BACKOUT_ACTOR") or _default_actor())
    # seconds a lease lives without a heartbeat; renewed every `heartbeat` (at most ttl/3)
    lease_ttl: float = field(
        default_factory=lambda: _float_env("BACKOUT_LEASE_TTL", DEFAULT_LEASE_TTL)
    )
    config_file: str | None = None  # where the settings below the options came from
    notify_defaults: dict[str, Any] | None = None  # [notify], validated by the caller
    sources: dict[str, str] = field(default_factory=dict)  # setting -> where it came from
    heartbeat: float = field(
        default_factory=lambda: _float_env("BACKOUT_HEARTBEAT", DEFAULT_HEARTBEAT)
    )

    @classmethod
    def load(
        cls,
        database_url: str | None = None,
        actor: str | None = None,
        config: str | None = None,
        cwd: Path | None = None,
    ) -> Settings:
        """The settings of a command: options, then environment, then the configuration
        file, then defaults."""
        path = Path(config) if config else find_config(cwd or Path.cwd())
        file = read_config(path) if path else ConfigFile()
        where = str(path) if path else ""
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for name, option, env, from_file, default in (
            ("database_url", database_url, "BACKOUT_DATABASE_URL", file.database_url, DEFAULT_URL),
            ("actor", actor, "BACKOUT_ACTOR", file.actor, None),
            ("lease_ttl", None, "BACKOUT_LEASE_TTL", file.lease_ttl, DEFAULT_LEASE_TTL),
            ("heartbeat", None, "BACKOUT_HEARTBEAT", file.heartbeat, DEFAULT_HEARTBEAT),
        ):
            if option:
                values[name], sources[name] = option, "option"
            elif os.environ.get(env):
                values[name] = (
                    _float_env(env, float(default or 0)) if name in SECONDS else os.environ[env]
                )
                sources[name] = f"env {env}"
            elif from_file is not None:
                values[name], sources[name] = from_file, where
            else:
                values[name] = default if default is not None else _default_actor()
                sources[name] = "default"
        if file.notify is not None:
            sources["notify"] = where
        return cls(
            values["database_url"],
            values["actor"],
            float(values["lease_ttl"]),
            str(path) if path else None,
            file.notify,
            sources,
            float(values["heartbeat"]),
        )


class ConfigFile(BaseModel):
    """What a configuration file may say (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")

    database_url: str | None = Field(None, description="The store (sqlite:/// or postgresql://).")
    actor: str | None = Field(None, description="Who acts, when neither --actor nor env say.")
    lease_ttl: float | None = Field(None, gt=0, description="Seconds (or 5s) a lease lives.")
    heartbeat: float | None = Field(
        None, gt=0, description="Seconds (or 1s) between two renewals of a lease."
    )
    notify: dict[str, Any] | None = Field(
        None, description="Organisation-wide notify defaults, merged under each plan's own."
    )


def find_config(start: Path) -> Path | None:
    """``BACKOUT_CONFIG``, else the nearest ``backout.toml`` or ``pyproject.toml`` with a
    ``[tool.backout]`` table, from ``start`` upwards."""
    named = os.environ.get("BACKOUT_CONFIG")
    if named:
        return Path(named)
    for folder in [start, *start.parents]:
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
        project = folder / "pyproject.toml"
        if project.is_file() and "backout" in _toml(project).get("tool", {}):
            return project
    return None


def read_config(path: Path) -> ConfigFile:
    """Read and validate a configuration file (``[tool.backout]`` of a pyproject.toml)."""
    data = _toml(path)
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("backout", {})
    for key in SECONDS:
        if isinstance(data.get(key), str):
            try:
                data[key] = parse_duration(data[key])
            except ValueError as exc:
                raise UsageError(f"{path}: {key}: {exc}") from None
    try:
        return ConfigFile.model_validate(data)
    except ValidationError as exc:
        problem = exc.errors()[0]
        key = ".".join(str(p) for p in problem["loc"])
        raise UsageError(
            f"{path}: {key}: {problem['msg']}",
            hint="keys: database_url, actor, lease_ttl, heartbeat, [notify] "
            "(docs/configuration.md)",
        ) from None


def _toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise UsageError(f"cannot read configuration file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
