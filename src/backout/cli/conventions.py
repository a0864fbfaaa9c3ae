"""What every command's ``--help`` ends with: its exit codes and the environment variables it
reads. The root group gives every command attached to it (and to its subgroups) this
epilog, so a command added later gets it without doing anything.

Exit codes come from :data:`EXIT_CODES` by the command's path (``"audit verify"``), else
from the default set; the environment is the variables every command reads, those its own
options read (``envvar=``), and those its options' help names (``BACKOUT_LISTEN_TOKEN``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from types import MappingProxyType

import click

Codes = tuple[tuple[int, str], ...]

_BAD_INPUT = (2, "bad input: an unknown id, a bad option value, an invalid file")
_INTERRUPTED = ((130, "interrupted (Ctrl-C)"),)
_STOPPED = (
    (129, "stopped by SIGHUP (the terminal closed; resume continues the run)"),
    (130, "stopped by Ctrl-C (resume continues the run)"),
    (143, "stopped by SIGTERM (resume continues the run)"),
)

DEFAULT_CODES: Codes = (
    (0, "success"),
    (1, "the operation failed (e.g. the store could not be reached)"),
    _BAD_INPUT,
    *_INTERRUPTED,
)
_RUN_CODES: Codes = (
    (0, "the run succeeded (backed out and verified)"),
    (1, "the backout or its verification failed"),
    _BAD_INPUT,
    (3, "the run needs attention: `backout resume RUN` or `backout abandon RUN`"),
    *_STOPPED,
)
_DEPLOY_CODES: Codes = (
    (0, "promoted (deploy) or healthy for the whole watch"),
    (1, "the backout or its verification failed"),
    _BAD_INPUT,
    (3, "the run needs attention: `backout resume RUN` or `backout abandon RUN`"),
    (4, "a trigger fired and the release was backed out (and verified)"),
    *_STOPPED,
)
_OUTCOME_CODES: Codes = (
    (0, "the run succeeded, or is still pending or running"),
    (1, "the run failed (or was abandoned)"),
    _BAD_INPUT,
    (3, "the run needs attention"),
    (4, "a deploy or watch that backed out (and verified)"),
    *_INTERRUPTED,
)
_PENDING_CODES: Codes = (
    (0, "every event was delivered"),
    (1, "some events are still pending (they are kept and retried)"),
    _BAD_INPUT,
    *_INTERRUPTED,
)

# a command's path below `backout` -> its exit codes, where they differ from DEFAULT_CODES
EXIT_CODES: Mapping[str, Codes] = MappingProxyType(
    {
        "validate": (
            (0, "every file is valid (warnings allowed unless --strict)"),
            (2, "a file has an error: FILE:LINE:COL: field: message (hint)"),
            *_INTERRUPTED,
        ),
        "run": (
            _RUN_CODES[0],
            (1, "the backout or its verification failed; with --dry-run: problems were listed"),
            *_RUN_CODES[2:],
        ),
        "resume": _RUN_CODES,
        "worker": _RUN_CODES,
        "status": _OUTCOME_CODES,
        "deploy": _DEPLOY_CODES,
        "watch": _DEPLOY_CODES,
        "rehearse": (
            (0, "every drill passed within the plan's rto"),
            (1, "a drill failed or took longer than the rto"),
            _BAD_INPUT,
            (3, "a drill's run needs an operator (resume it)"),
            *_STOPPED,
        ),
        "drills due": (
            (0, "no plan is due for a drill"),
            (1, "a plan is due for a drill"),
            _BAD_INPUT,
            *_INTERRUPTED,
        ),
        "gate": (
            (0, "the change may start"),
            (1, "a policy check fails: the change may not start"),
            _BAD_INPUT,
            *_INTERRUPTED,
        ),
        "audit verify": (
            (0, "the audit chain is intact"),
            (1, "a link is broken (the first one is named)"),
            _BAD_INPUT,
            *_INTERRUPTED,
        ),
        "outbox send": _PENDING_CODES,
        "notify send": _PENDING_CODES,
        "notify test": (
            (0, "every channel accepted the test message"),
            (1, "a channel failed"),
            _BAD_INPUT,
            *_INTERRUPTED,
        ),
        "demo": (
            (0, "the bad release was backed out and verified (and the drill passed)"),
            (1, "it was not"),
            *_INTERRUPTED,
        ),
        "flags serve": (
            (1, "the server could not start"),
            _BAD_INPUT,
            (130, "stopped by Ctrl-C (in-flight requests finished)"),
            (143, "stopped by SIGTERM (in-flight requests finished)"),
        ),
        "server": (
            (1, "the server could not start (e.g. the store could not be reached)"),
            (2, "a bad --listen, a busy port, or --open on an address that is not loopback"),
            (130, "stopped by Ctrl-C (in-flight requests finished)"),
            (143, "stopped by SIGTERM (in-flight requests finished)"),
        ),
        "token create": (
            (0, "the token was made (and printed, this once)"),
            (1, "the store could not be reached or written"),
            (2, "an unknown role, a bad --expires, an empty or multi-line --actor or --name"),
            *_INTERRUPTED,
        ),
        "token revoke": (
            (0, "the token was revoked: it is refused from now on"),
            (1, "the store could not be reached or written"),
            (2, "no reason given, no such token, or it was revoked already"),
            *_INTERRUPTED,
        ),
        "abandon": (
            (0, "the run was abandoned: the service is free"),
            (1, "the store could not be reached or written"),
            (2, "no reason given, no such run, or the run does not need attention"),
            *_INTERRUPTED,
        ),
    }
)

# every variable a command may read, and what for
ENVIRONMENT: Mapping[str, str] = MappingProxyType(
    {
        "BACKOUT_DATABASE_URL": "the store URL (as --db; default sqlite:///.backout/backout.db)",
        "BACKOUT_ACTOR": "who is acting, in the journal and audit trail (as --actor)",
        "BACKOUT_CONFIG": "the configuration file (as --config; see `backout config`)",
        "BACKOUT_LEASE_TTL": "seconds a run's lease lives without a heartbeat (default 5)",
        "BACKOUT_HEARTBEAT": "seconds between two renewals of a run's lease (default 1)",
        "BACKOUT_ENV": "the plan's environment to act on (as --env)",
        "BACKOUT_POLICY": "the policy file (as --policy)",
        "BACKOUT_LISTEN_TOKEN": "the token Alertmanager must send to --listen",
        "BACKOUT_LISTEN_USER": "the basic-auth user Alertmanager sends the token as",
        "BACKOUT_OUTBOX_URL": "the ITSM tool's base URL (as --url)",
        "BACKOUT_OUTBOX_FORMAT": "the ITSM tool's format (as --format)",
        "BACKOUT_OUTBOX_PROJECT": "the Jira project (as --project)",
        "BACKOUT_OUTBOX_TOKEN": "the ITSM tool's API token",
        "BACKOUT_FLAGS_TOKEN": "the bearer token apps must send (as --token-file's content)",
        "BACKOUT_SERVER_LISTEN": "the address `backout server` serves on (as --listen)",
        "BACKOUT_SERVER_URL": "the `backout server` to read from (as --server)",
        "BACKOUT_TOKEN": "the API token sent to --server (`backout token create`)",
        "BACKOUT_PAGERDUTY_WEBHOOK_SECRET": "the secret PagerDuty signs its webhooks with",
    }
)
# read by every command (through the settings)
GLOBAL_ENVIRONMENT = (
    "BACKOUT_DATABASE_URL",
    "BACKOUT_ACTOR",
    "BACKOUT_CONFIG",
    "BACKOUT_LEASE_TTL",
)
# read by a command without an option naming it
EXTRA_ENVIRONMENT: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"outbox send": ("BACKOUT_OUTBOX_TOKEN",), "journal": ("BACKOUT_TOKEN",)}
)
_NAMED = re.compile(r"\bBACKOUT_[A-Z][A-Z_]*[A-Z]\b")
_MARK = "Exit codes:"


def exit_codes(path: str) -> Codes:
    return EXIT_CODES.get(path, DEFAULT_CODES)


def environment(path: str, command: click.Command) -> dict[str, str]:
    """The variables ``command`` reads, each with what it sets: everyone's, its options'
    (described as the option, unless :data:`ENVIRONMENT` says more), those its help names."""
    found = {name: ENVIRONMENT[name] for name in GLOBAL_ENVIRONMENT}
    for param in command.params:
        envvars = param.envvar if isinstance(param.envvar, list | tuple) else [param.envvar]
        for name in (str(e) for e in envvars if e):
            found.setdefault(name, ENVIRONMENT.get(name, f"as {param.opts[0]}"))
        for name in _NAMED.findall(getattr(param, "help", None) or ""):
            found.setdefault(name, ENVIRONMENT.get(name, ""))
    for name in EXTRA_ENVIRONMENT.get(path, ()):
        found.setdefault(name, ENVIRONMENT.get(name, ""))
    return found


def epilog(path: str, command: click.Command) -> str:
    """The text ``--help`` ends with (``\\b`` keeps click from rewrapping the tables)."""
    codes = "\n".join(f"  {code:<4} {meaning}" for code, meaning in exit_codes(path))
    found = environment(path, command)
    width = max(len(name) for name in found)
    env = "\n".join(f"  {name:<{width}}  {text}".rstrip() for name, text in found.items())
    return f"\b\n{_MARK}\n{codes}\n\n\b\nEnvironment:\n{env}"


def document(command: click.Command, path: str = "") -> None:
    """Give ``command`` (and every command below it) the exit codes and environment."""
    for sub_path, sub in _walk(command, path):
        if _MARK not in (sub.epilog or ""):
            ending = epilog(sub_path, sub)
            sub.epilog = f"{sub.epilog}\n\n{ending}" if sub.epilog else ending


def _walk(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _walk(sub, f"{path} {name}".strip())
