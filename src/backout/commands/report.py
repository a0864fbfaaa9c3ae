"""Report verbs: draft a run's post-incident report (``backout report RUN``) and check a
report against the store (``backout report --check FILE``)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from backout.changes.events import record
from backout.commands.caller import Caller
from backout.errors import UsageError
from backout.notify.people import share_report
from backout.postmortem import Draft, Format, ReportCheck, check, draft
from backout.store import repo
from backout.store.changes import get_change

# what an ITSM note takes: ServiceNow's journal fields and Jira's comments hold more, but a
# report longer than this is better read where it is published (--url)
NOTE_MAX = 30_000


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


@dataclass(frozen=True)
class SharedReport:
    """Where a report went: the change record it was attached to (queued for the ITSM
    tool), and the channels routed ``run.report`` that were told."""

    run_id: str
    journal_sha256: str
    change_id: int | None
    told: list[str]
    url: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "journal_sha256": self.journal_sha256,
            "attached_to_change": self.change_id,
            "told": self.told,
            "url": self.url,
        }


def report_share(
    caller: Caller,
    run_id: str,
    attach: bool = False,
    notify: bool = False,
    url: str | None = None,
) -> SharedReport:
    """Attach the run's report (Markdown, or a link to ``url`` when it is long) to the
    run's change record, and/or tell the channels routed ``run.report`` (with ``url``).
    Both are audited; the ITSM tool and the channels get them through the outbox."""
    if not attach and not notify:
        raise UsageError("nothing to share to", hint="give --attach, --share, or both")
    drafted = report_draft(caller, run_id)
    pm = drafted.report
    markdown = drafted.render("md")
    where = {"journal_sha256": pm.seal.journal_sha256, **({"url": url} if url else {})}
    change_id: int | None = None
    told: list[str] = []
    with caller.store.session() as session:
        row = repo.get_run(session, pm.run_id)
        if attach:
            if row.change_id is None:
                raise UsageError(
                    f"run {pm.run_id} belongs to no change record: there is nothing to "
                    "attach the report to",
                    hint="runs join a change with `backout run PLAN --change ID`; "
                    "--share tells the plan's channels instead",
                )
            change = get_change(session, row.change_id, lock=True)
            if len(markdown) > NOTE_MAX:
                link = f" It is at {url}" if url else " Publish it and attach it with --url."
                markdown = (
                    markdown[:NOTE_MAX].rsplit("\n", 1)[0]
                    + f"\n\n… (cut at {NOTE_MAX} characters.{link})\n"
                )
            details = {"run": pm.run_id, **where}
            record(session, change, caller.actor, "report", details, body=markdown)
            change_id = change.id
        if notify:
            text = pm.outcome + (f" The report: {url}" if url else "")
            said = share_report(
                session,
                row,
                caller.actor,
                "post-incident report drafted",
                text,
                {"run": pm.run_id, **where},
            )
            told = said.channels
    return SharedReport(pm.run_id, pm.seal.journal_sha256, change_id, told, url)


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
