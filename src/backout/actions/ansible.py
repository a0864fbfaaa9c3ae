"""``ansible:`` — run a playbook with ``ansible-playbook`` and journal what each host did.

Per-host results come from a callback plugin shipped with backout
(``ansible_plugins/backout_results.py``; ansible-core ships no JSON callback of its own),
enabled for this run only: the step's journal entry holds every host's ok / changed /
failed / unreachable / skipped / rescued counts and the failed tasks, and a failure names
the hosts and tasks. A host whose failure a ``rescue:`` handled counts as rescued, not
failed; a host the play never reached (ansible #32841) shows up as unreachable or missing,
never as ok.

Extra vars are templated (secrets allowed) and reach Ansible as a JSON file readable only
by this user (``--extra-vars @FILE``), never on the command line, where ``ps`` would show
them. Everything the step records is redacted.
"""

from __future__ import annotations

import json
import os
import shlex
import tempfile
from pathlib import Path
from typing import Any

from pydantic import Field

from backout.actions.base import Action, Outcome
from backout.kernel.options import Context, Options, resolve
from backout.probes.toolcli import ToolResult, Transcript, run_tool

PLUGINS = str(Path(__file__).with_name("ansible_plugins"))
CALLBACK = "backout_results"
MAX_LISTED = 5  # hosts and tasks named in a summary; the journal detail has them all
# ansible-playbook's exit codes (ansible.errors.ExitCode in ansible-core 2.19)
EXIT_MEANING = {
    1: "error",
    2: "a host failed",
    4: "a host was unreachable, or the playbook did not parse",
    5: "bad options",
    99: "interrupted",
    250: "unexpected error",
}


class AnsibleOptions(Options):
    playbook: str = Field(description="The playbook file (relative to the plan file).")
    inventory: list[str] = Field(
        default_factory=list,
        description="Inventory sources (-i): files relative to the plan, or `host1,host2,`.",
    )
    limit: str | None = Field(None, description="Only these hosts (--limit pattern).")
    extra_vars: dict[str, Any] = Field(
        default_factory=dict, description="Variables for the play (templated, secrets allowed)."
    )
    tags: list[str] = Field(default_factory=list, description="Only tasks with these tags.")
    skip_tags: list[str] = Field(default_factory=list, description="Skip tasks with these tags.")
    check: bool = Field(False, description="Check mode (--check): report, change nothing.")
    diff: bool = Field(False, description="Show what files and templates would change.")
    forks: int | None = Field(None, ge=1, description="Hosts worked on at once (--forks).")
    env: dict[str, str] = Field(
        default_factory=dict, description="Extra environment, e.g. {ANSIBLE_CONFIG: ansible.cfg}."
    )
    ansible_playbook: str = Field(
        "ansible-playbook", description="The ansible-playbook program (a path, or on PATH)."
    )


class AnsibleAction(Action):
    kind = "ansible"
    in_process = False
    Options = AnsibleOptions

    def execute(self, options: AnsibleOptions, ctx: Context) -> Outcome:
        with tempfile.TemporaryDirectory(prefix="backout-ansible-") as folder:
            results = Path(folder) / "results.json"
            argv = _argv(options, ctx, Path(folder))
            env = _env(options, results)
            result = run_tool(argv, ctx, timeout=ctx.timeout, env=env)
            report = _read(results)
        output = Transcript().add_text(result, ctx)
        if report is None:
            return Outcome(
                False,
                ctx.redact(f"ansible-playbook gave no results: {result.problem()}"),
                output,
                {"exit_code": result.exit_code, "check": options.check},
            )
        detail = {
            "exit_code": result.exit_code,
            "check": options.check,
            "hosts": report["hosts"],
            "failed_hosts": _failed_hosts(report),
            "failures": _live_failures(report),
        }
        ok = result.ok and not detail["failed_hosts"]
        summary = _success(report, options) if ok else _failure(report, result)
        return Outcome(ok, ctx.redact(summary), output, detail)

    def describe(self, options: AnsibleOptions) -> str:
        words = ["ansible-playbook", options.playbook]
        if options.limit:
            words += ["--limit", options.limit]
        if options.tags:
            words += ["--tags", ",".join(options.tags)]
        if options.check:
            words.append("--check")
        return shlex.join(words)


def _argv(options: AnsibleOptions, ctx: Context, folder: Path) -> list[str]:
    argv = [options.ansible_playbook, str(resolve(ctx.workdir, options.playbook))]
    for source in options.inventory:
        # "a,b," is a host list, not a file; anything else is a path relative to the plan
        argv += ["-i", source if "," in source else str(resolve(ctx.workdir, source))]
    if options.limit:
        argv += ["--limit", options.limit]
    if options.extra_vars:
        path = folder / "extra-vars.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(options.extra_vars, out)
        argv += ["--extra-vars", f"@{path}"]
    if options.tags:
        argv += ["--tags", ",".join(options.tags)]
    if options.skip_tags:
        argv += ["--skip-tags", ",".join(options.skip_tags)]
    if options.forks:
        argv += ["--forks", str(options.forks)]
    argv += ["--check"] if options.check else []
    argv += ["--diff"] if options.diff else []
    return argv


def _env(options: AnsibleOptions, results: Path) -> dict[str, str]:
    """Our callback on top of whatever the user enables; plain text, no retry files."""
    merged = {**os.environ, **options.env}
    enabled = [c for c in merged.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",") if c]
    plugin_path = [p for p in merged.get("ANSIBLE_CALLBACK_PLUGINS", "").split(":") if p]
    return {
        **options.env,
        "ANSIBLE_CALLBACKS_ENABLED": ",".join([*enabled, CALLBACK]),
        "ANSIBLE_CALLBACK_PLUGINS": ":".join([PLUGINS, *plugin_path]),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "BACKOUT_ANSIBLE_RESULTS": str(results),
    }


def _read(results: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(results.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "hosts" in data else None


def _failed_hosts(report: dict[str, Any]) -> list[str]:
    return sorted(
        host
        for host, counts in report["hosts"].items()
        if counts.get("failed") or counts.get("unreachable")
    )


def _live_failures(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The failures that count: those of hosts still failed at the end (a rescued failure
    is in the host's ``rescued`` count)."""
    failed = set(_failed_hosts(report))
    return [f for f in report.get("failures", []) if f.get("host") in failed]


def _success(report: dict[str, Any], options: AnsibleOptions) -> str:
    hosts = report["hosts"]
    if not hosts:
        return "no hosts matched: nothing ran"
    changed = sum(1 for counts in hosts.values() if counts.get("changed"))
    rescued = sum(1 for counts in hosts.values() if counts.get("rescued"))
    mode = " (check mode: nothing changed)" if options.check else ""
    extra = f", {rescued} rescued" if rescued else ""
    return f"{len(hosts)} host(s) ok, {changed} changed{extra}{mode}"


def _failure(report: dict[str, Any], result: ToolResult) -> str:
    failures = _live_failures(report)
    if not failures:
        meaning = EXIT_MEANING.get(result.exit_code or 0, "failed")
        return f"ansible-playbook {meaning}: {result.problem()}"
    parts = []
    for failure in failures[:MAX_LISTED]:
        what = "unreachable" if failure.get("unreachable") else "failed"
        message = str(failure.get("message", "")).strip().splitlines()
        said = f": {message[0][:200]}" if message else ""
        parts.append(f"{failure['host']} {what} at task {failure['task']!r}{said}")
    more = len(failures) - MAX_LISTED
    tail_note = f"; and {more} more failure(s)" if more > 0 else ""
    failed = _failed_hosts(report)
    return (
        f"{len(failed)} of {len(report['hosts'])} host(s) failed: " + "; ".join(parts) + tail_note
    )
