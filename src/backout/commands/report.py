"""Report verbs: draft a run's post-incident report (``backout report RUN``) and check a
report against the store (``backout report --check FILE``)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from backout.commands.caller import Caller
from backout.errors import UsageError
from backout.postmortem import Draft, Format, ReportCheck, check, draft


@dataclass(frozen=True)
class WrittenReport:
    """A report drafted and rendered: ``text`` when nothing was written, else the files
    (the report first, then the charts written next to a Markdown report)."""

    run_id: str
    format: str
    in_progress: bool
    journal_sha256: str
    text: str | None = None
    files: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "format": self.format,
            "in_progress": self.in_progress,
            "journal_sha256": self.journal_sha256,
            "files": self.files,
        }


def report_draft(caller: Caller, run_id: str) -> Draft:
    """The run's report, ready to be rendered (the id may be a unique prefix)."""
    return draft(caller.store, run_id)


def report(
    caller: Caller, run_id: str, fmt: Format = "md", output: str | Path | None = None
) -> WrittenReport:
    """Draft the run's report in ``fmt``; with ``output``, write it there (a Markdown
    report gets its two charts as SVG files next to it, linked from it)."""
    drafted = report_draft(caller, run_id)
    pm = drafted.report
    about = WrittenReport(pm.run_id, fmt, pm.in_progress, pm.seal.journal_sha256)
    if output is None:
        return replace(about, text=drafted.render(fmt))
    path = Path(output)
    if path.is_dir():
        raise UsageError(f"--output {path} is a folder", hint="name the report's file")
    files = [path]
    links: dict[str, str] = {}
    if fmt == "md":
        drawn = drafted.charts()
        for name, svg in (("signal", drawn.signal), ("steps", drawn.steps)):
            if svg is not None:
                chart = path.with_name(f"{path.stem}-{name}.svg")
                _write(chart, svg + "\n")
                files.append(chart)
                links[name] = chart.name
    _write(path, drafted.render(fmt, links))
    return replace(about, files=[str(f) for f in files])


def report_check(caller: Caller, path: str | Path) -> ReportCheck:
    """Compare a report's seal with the store: the journal's hash and the audit record it
    cites. A file that is not a backout report is a UsageError."""
    return check(caller.store, Path(path))


def _write(path: Path, text: str) -> None:
    """Write to a temporary name in the same folder, then rename over: never half a file."""
    folder = path.parent if str(path.parent) else Path()
    if not folder.is_dir():
        raise UsageError(f"--output {path}: folder {folder} does not exist")
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temp, 0o644)  # a report is for sharing (mkstemp makes it private)
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise UsageError(f"cannot write {path}: {exc.strerror}") from exc
