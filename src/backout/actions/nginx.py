"""``nginx:`` — shift traffic between upstream members (blue-green flips, canary weights).

The action owns one include file holding one ``upstream`` block. It writes the new block
atomically (temp file + rename), has nginx test the whole configuration (``nginx -t``) and
only then reloads (``nginx -s reload``). If nginx rejects the file, or the reload cannot be
signalled, the previous file is put back, so what is on disk is always what nginx runs.
``reverse`` writes back the file as it was before the step, with the same test and reload.

nginx applies a reload within a fraction of a second: the master starts new workers and
lets the old ones finish their requests. ``nginx -s reload`` only sends the signal, so the
step waits until only the new workers accept connections: when it returns, new traffic
follows the new weights (a connection already open may still see the old ones briefly).
"""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from backout.actions.base import Action, Outcome
from backout.errors import ActionError
from backout.kernel.options import Context, Options, resolve
from backout.proc import run_process

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
# an address nginx parses: host:port, [v6]:port, unix:/path; no blank, quote, ; { } or #
ADDRESS = re.compile(r"^[^\s;{}#'\"]+$")
HEADER = "# written by backout's nginx action; a later step or its reverse may overwrite it\n"


RELOAD_WAIT_S = 5.0  # how long a step waits for nginx to put the new workers in place


class NginxOptions(Options):
    upstream_file: str = Field(
        description="The include file holding the upstream block (relative to the plan file)."
    )
    upstream: str = Field(description="Name of the upstream block, as used in proxy_pass.")
    servers: dict[str, str] = Field(
        min_length=1,
        description="Members by name, e.g. {blue: '127.0.0.1:8081', green: '127.0.0.1:8082'}.",
    )
    weights: dict[str, int] = Field(
        description="Weight per member (0-1000); 0 keeps the member in the block marked down."
    )
    config: str = Field(
        description="nginx's main configuration file, passed as -c to test and reload."
    )
    nginx: str = Field("nginx", description="The nginx program (a path, or a name on PATH).")
    prefix: str | None = Field(None, description="nginx prefix folder (-p), when not the default.")

    @field_validator("upstream")
    @classmethod
    def _upstream_name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(f"{value!r} is not an upstream name: use letters, digits, _ . -")
        return value

    @field_validator("servers")
    @classmethod
    def _addresses(cls, value: dict[str, str]) -> dict[str, str]:
        for name, address in value.items():
            if not NAME.match(name):
                raise ValueError(f"member name {name!r}: use letters, digits, _ . -")
            if not ADDRESS.match(address):
                raise ValueError(
                    f"member {name}: {address!r} is not an address "
                    "(write host:port or unix:/path, without blanks, quotes, ; { } or #)"
                )
        return value

    @field_validator("weights")
    @classmethod
    def _weight_range(cls, value: dict[str, int]) -> dict[str, int]:
        for name, weight in value.items():
            if not 0 <= weight <= 1000:
                raise ValueError(f"weight of {name} is {weight}; give 0 to 1000")
        return value

    @model_validator(mode="after")
    def _weights_match_servers(self) -> NginxOptions:
        unknown = sorted(set(self.weights) - set(self.servers))
        if unknown:
            raise ValueError(f"weights name members not in servers: {', '.join(unknown)}")
        missing = sorted(set(self.servers) - set(self.weights))
        if missing:
            raise ValueError(
                f"no weight for {', '.join(missing)}: give every member a weight (0 = down)"
            )
        if not any(self.weights.values()):
            raise ValueError("every weight is 0: at least one member must take traffic")
        return self


def render_upstream(options: NginxOptions) -> str:
    """The include file's text; nginx needs weight >= 1, so weight 0 becomes ``down``."""
    lines = [HEADER, f"upstream {options.upstream} {{\n"]
    for name, address in options.servers.items():
        weight = options.weights[name]
        state = f"weight={weight}" if weight else "down"
        lines.append(f"    server {address} {state};  # {name}\n")
    lines.append("}\n")
    return "".join(lines)


def split_summary(options: NginxOptions) -> str:
    total = sum(options.weights.values())
    return ", ".join(
        f"{name} {round(100 * weight / total)}%" for name, weight in options.weights.items()
    )


class NginxAction(Action):
    kind = "nginx"
    Options = NginxOptions

    def execute(self, options: NginxOptions, ctx: Context) -> Outcome:
        path = resolve(ctx.workdir, options.upstream_file)
        previous = _read(path)
        problem, output = _apply(path, render_upstream(options), previous, options, ctx)
        if problem:
            return Outcome(False, problem, output)
        return Outcome(
            True,
            f"upstream {options.upstream}: {split_summary(options)} (nginx reloaded)",
            output,
            detail={"file": str(path), "previous": previous, "weights": dict(options.weights)},
        )

    def describe(self, options: NginxOptions) -> str:
        return f"nginx upstream {options.upstream}: {split_summary(options)}"

    def reverse(self, options: NginxOptions, done: dict[str, Any], ctx: Context) -> Outcome:
        if "previous" not in done:  # without it, "restore" could only mean deleting the file
            return Outcome(False, "cannot reverse: the step recorded no previous upstream file")
        path = resolve(ctx.workdir, options.upstream_file)
        current = _read(path)
        previous = done["previous"]
        problem, output = _apply(path, previous, current, options, ctx)
        if problem:
            return Outcome(False, problem, output)
        restored = "removed it (it did not exist before)" if previous is None else "restored it"
        return Outcome(
            True,
            f"upstream file {options.upstream_file}: {restored} (nginx reloaded)",
            output,
            detail={"file": str(path), "previous": current},
        )


def _apply(
    path: Path, content: str | None, fallback: str | None, options: NginxOptions, ctx: Context
) -> tuple[str, str]:
    """Write ``content`` (None: remove the file), test, reload; on failure put ``fallback``
    back. Returns (problem, nginx output); an empty problem means success."""
    deadline = time.monotonic() + ctx.timeout
    try:
        _write(path, content)
    except OSError as exc:
        return f"cannot write {path}: {exc.strerror or exc}", ""
    master = _master_pid(options, ctx)
    before = _workers(master)
    for verb, argv in (("test", ["-t"]), ("reload", ["-s", "reload"])):
        ok, output = _nginx(options, argv, ctx, deadline)
        if not ok:
            _write(path, fallback)
            return (
                f"nginx {verb} failed, the previous upstream file is back: {_first_error(output)}",
                output,
            )
    _wait_for_new_workers(master, before, deadline)
    return "", ""


def _master_pid(options: NginxOptions, ctx: Context) -> int | None:
    """The running master's pid, from the config's ``pid`` directive (best effort)."""
    config = resolve(ctx.workdir, options.config)
    try:
        found = re.search(r"^\s*pid\s+([^;\s]+)\s*;", config.read_text(), re.MULTILINE)
    except OSError:
        return None
    pid_file = Path(found.group(1)) if found else Path("/run/nginx.pid")
    if not pid_file.is_absolute():
        if not options.prefix:
            return None
        pid_file = resolve(ctx.workdir, options.prefix) / pid_file
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _workers(master: int | None) -> set[int]:
    """The master's workers that still accept connections (old ones retitle themselves
    "shutting down" when they stop listening)."""
    if master is None:
        return set()
    workers = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) != master:
                continue
            if b"shutting down" not in (entry / "cmdline").read_bytes():
                workers.add(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return workers


def _wait_for_new_workers(master: int | None, before: set[int], deadline: float) -> None:
    """``nginx -s reload`` only sends a signal: the step is done when traffic really follows
    the new file, i.e. when only workers started after the reload accept connections."""
    if master is None or not before:
        return
    limit = min(deadline, time.monotonic() + RELOAD_WAIT_S)
    while time.monotonic() < limit:
        current = _workers(master)
        if current and not current & before:
            return
        time.sleep(0.02)


def _nginx(
    options: NginxOptions, args: list[str], ctx: Context, deadline: float
) -> tuple[bool, str]:
    argv = [options.nginx, *args, "-c", str(resolve(ctx.workdir, options.config))]
    if options.prefix:
        argv += ["-p", str(resolve(ctx.workdir, options.prefix))]
    remaining = max(deadline - time.monotonic(), 0.1)
    try:
        result = run_process(argv, cwd=ctx.workdir, timeout=remaining, env=ctx.env)
    except ActionError as exc:
        return False, exc.message
    output = ctx.redact(result.output)
    if result.timed_out:
        return False, f"{' '.join(argv)} timed out\n{output}"
    return result.ok, output


def _first_error(output: str) -> str:
    """nginx's own complaint (the [emerg]/[error] line), else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if "[emerg]" in line or "[error]" in line or "[alert]" in line:
            return line
    return lines[-1] if lines else "no output"


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _write(path: Path, content: str | None) -> None:
    if content is None:
        path.unlink(missing_ok=True)
        return
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    temp.write_text(content, encoding="utf-8")
    os.chmod(temp, 0o644)
    os.replace(temp, path)  # rename(2): nginx reads the old file or the new one, never half
