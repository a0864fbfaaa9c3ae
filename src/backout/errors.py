"""One error tree for everything `backout` raises on purpose.

::

    BackoutError                    exit 1   base class; carries run_id / step context
    ├── UsageError                  exit 2   bad argument, unknown run, bad state for the verb
    │   ├── PlanError               exit 2   a plan file failed to load or validate (has .issues)
    │   ├── TemplateError           exit 2   a template could not be rendered
    │   ├── ServiceBusyError        exit 2   another run holds the service
    │   ├── NoStoreError            exit 2   a read-only verb found no store (none is created)
    │   └── ChangeTransitionError   exit 2   a change asked to go where its lifecycle forbids
    │                                        (also a TransitionError)
    ├── StoreError                  exit 1   the database could not be reached or migrated
    ├── TransitionError             exit 1   a forbidden run/step state transition
    ├── ActionError                 exit 1   an action could not be carried out
    └── NeedsAttentionError         exit 3   a run stopped and needs a human decision

Third-party exceptions are converted at the boundary with ``raise ... from exc`` so a
user never sees a traceback for bad input or an unreachable service.
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
        text = f"{self.file}:{self.line}:{self.col}: {self.field}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class BackoutError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with."""

    exit_code = 1

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


class PlanError(UsageError):
    """A plan file is not valid; ``issues`` lists every problem with its place."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


class TemplateError(UsageError):
    """A template in a plan could not be rendered (undefined name, syntax, sandbox)."""


class ServiceBusyError(UsageError):
    """Another run is active for the same service."""


class NoStoreError(UsageError):
    """There is no store where a read-only verb looked; reading never creates one."""


class StoreError(BackoutError):
    """The store could not be opened, migrated or written."""


class TransitionError(BackoutError):
    """A run or step was asked to move to a state its rules forbid."""


class ChangeTransitionError(UsageError, TransitionError):
    """A user asked a change record to move where its lifecycle rules forbid (exit 2: the
    request is impossible as asked; it is still a TransitionError for code that catches those)."""


class ActionError(BackoutError):
    """An action failed in a way that is not a plain non-zero outcome."""


class NeedsAttentionError(BackoutError):
    """The run cannot continue safely without a human decision."""

    exit_code = 3
