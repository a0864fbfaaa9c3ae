"""The plans a server offers: the ``*.yaml`` / ``*.yml`` files of one folder
(``backout server --plans DIR``), each named by its file name without the extension.

The API starts runs of these plans only, by name: a request never sends a plan's text to
run, so whoever may operate runs only what the folder's owner put there. Without
``--plans`` the server offers none, and starting a run is refused with a hint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from backout.errors import NotFound, UsageError

SUFFIXES = (".yaml", ".yml")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class PlanFolder:
    """``root``: the folder; None: the server offers no plans."""

    root: Path | None = None

    @classmethod
    def of(cls, folder: str | Path | None) -> PlanFolder:
        """The folder given on the command line; one that is not a folder is a UsageError."""
        if folder is None or str(folder) == "":
            return cls(None)
        root = Path(folder).expanduser().resolve()
        if not root.is_dir():
            raise UsageError(
                f"--plans {folder}: not a folder",
                hint="name the folder that holds the plans the server may run",
            )
        return cls(root)

    def names(self) -> list[str]:
        """The plans' names, sorted."""
        if self.root is None:
            return []
        found = {
            path.stem
            for path in self.root.iterdir()
            if path.suffix in SUFFIXES and path.is_file() and _NAME.match(path.stem)
        }
        return sorted(found)

    def path(self, name: str) -> Path:
        """The file of the plan ``name``; NotFound (404) when the folder has none."""
        if self.root is None:
            raise NotFound(
                f"no plan {name!r}: this server offers no plans",
                hint="start the server with --plans DIR (the folder of plans it may run)",
            )
        if _NAME.match(name):
            for suffix in SUFFIXES:
                candidate = self.root / f"{name}{suffix}"
                if candidate.is_file():
                    return candidate
        known = ", ".join(self.names()) or "none"
        raise NotFound(f"no plan {name!r} in {self.root}", hint=f"the plans are: {known}")
