"""One error tree for everything `backout` raises on purpose. Each class carries the exit
code the CLI exits with and the HTTP status an API answers with, so no caller decides them.

::

    BackoutError                    exit 1  HTTP 500  base class; carries run_id / step context
    ├── UsageError (= Invalid)      exit 2  HTTP 400  bad argument or input
    │   ├── PlanError               exit 2  HTTP 422  a plan failed to load or validate (.issues)
    │   ├── TemplateError           exit 2  HTTP 422  a template could not be rendered
    │   ├── NotFound                exit 2  HTTP 404  no such run, change, flag, snapshot
    │   │   └── NoStoreError        exit 2  HTTP 404  a read-only verb found no store
    │   ├── Ambiguous               exit 2  HTTP 400  an id prefix matches several things
    │   ├── Conflict                exit 2  HTTP 409  the thing is in the wrong state for this
    │   │   ├── ServiceBusyError    exit 2  HTTP 409  another run holds the service
    │   │   └── ChangeTransitionError             a change's lifecycle forbids the move
    │   │                                             (also a TransitionError)
    │   └── Forbidden               exit 2  HTTP 403  this actor may not do this
    ├── Unauthenticated             exit 2  HTTP 401  no valid token: unknown, revoked or expired
    ├── StoreError                  exit 1  HTTP 503  the store could not be reached or used
    ├── TransitionError             exit 1  HTTP 409  a forbidden run/step state transition
    ├── ActionError                 exit 1  HTTP 502  an action could not be carried out
    └── NeedsAttentionError         exit 3  HTTP 409  a run stopped and needs a human decision

Third-party exceptions are converted at the boundary with ``raise ... from exc`` so a
user never sees a traceback for bad input or an unreachable service. This module imports
nothing but the standard library: anything may import it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Issue:
    """One problem found in a plan file, pinned to a place in it."""

    file: str
    line: int
    col: int
    field: str
    message: str
    hint: str = ""
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        """``FILE:LINE:COL: field: message (hint)``; a place without a line (a missing file,
        TOML) is the file alone, and an issue about no one field (``-``) leaves it out."""
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        field = "" if self.field in ("", "-") else f"{self.field}: "
        text = f"{where}: {field}{self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class BackoutError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with, ``http_status`` what an API
    answers with."""

    exit_code = 1
    http_status = 500

    def __init__(
        self, message: str, *, run_id: str | None = None, step: str | None = None, hint: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.run_id = run_id
        self.step = step
        self.hint = hint

    def __str__(self) -> str:
        context = ", ".join(
            f"{key} {value}" for key, value in (("run", self.run_id), ("step", self.step)) if value
        )
        text = f"{self.message} [{context}]" if context else self.message
        return f"{text}\nhint: {self.hint}" if self.hint else text


class UsageError(BackoutError):
    """The user asked for something that cannot be done as asked."""

    exit_code = 2
    http_status = 400


Invalid = UsageError  # the name the tree uses beside NotFound, Conflict, Forbidden


class NotFound(UsageError):
    """What the request names does not exist (a run, a change, a flag, a snapshot)."""

    http_status = 404


class Ambiguous(UsageError):
    """An id prefix matches more than one thing."""


class Conflict(UsageError):
    """The thing exists but is in the wrong state for the request."""

    http_status = 409


class Forbidden(UsageError):
    """This actor may not do this (a self-approval, an approver not in the plan's roles)."""

    http_status = 403


class Unauthenticated(BackoutError):
    """A request did not prove who it is: no token, or one that is unknown, revoked or
    expired. The message is the same for each, so it tells a guesser nothing; ``reason``
    (``missing``, ``malformed``, ``unknown``, ``revoked``, ``expired``) is for the log."""

    exit_code = 2
    http_status = 401

    def __init__(self, message: str, *, reason: str = "", hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


class PlanError(UsageError):
    """A plan file is not valid; ``issues`` lists every problem with its place."""

    http_status = 422

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


class TemplateError(UsageError):
    """A template in a plan could not be rendered (undefined name, syntax, sandbox)."""

    http_status = 422


class ServiceBusyError(Conflict):
    """Another run is active for the same service."""


class NoStoreError(NotFound):
    """There is no store where a read-only verb looked; reading never creates one."""


class StoreError(BackoutError):
    """The store could not be opened, migrated or written."""

    http_status = 503


class TransitionError(BackoutError):
    """A run or step was asked to move to a state its rules forbid."""

    http_status = 409


class ChangeTransitionError(Conflict, TransitionError):
    """A user asked a change record to move where its lifecycle rules forbid (exit 2: the
    request is impossible as asked; it is still a TransitionError for code that catches those)."""


class ActionError(BackoutError):
    """An action failed in a way that is not a plain non-zero outcome."""

    http_status = 502


class NeedsAttentionError(BackoutError):
    """The run cannot continue safely without a human decision."""

    exit_code = 3
    http_status = 409
