"""Post-incident reports drafted from a run's journal (``backout report``): the Google SRE
post-mortem's sections filled with what the store knows, placeholders for what only people
know, two SVG charts, and a seal (the journal's hash, the audit chain's position) that
``backout report --check`` compares with the store later."""

from __future__ import annotations

from dataclasses import dataclass

from backout.postmortem import render
from backout.postmortem.gather import build, gather, read, redactor_of
from backout.postmortem.model import FORMAT, Postmortem, Seal
from backout.postmortem.render import FORMATS, SECTIONS, Charts, Format
from backout.postmortem.seal import ReportCheck, check, read_seal
from backout.redact import Redactor
from backout.store.db import Store


@dataclass(frozen=True)
class Draft:
    """A report drafted from the store, ready to be written in any format."""

    report: Postmortem
    redactor: Redactor

    def render(self, fmt: Format, chart_files: dict[str, str] | None = None) -> str:
        if fmt == "json":
            return render.to_json(self.report, self.redactor)
        if fmt == "html":
            return render.to_html(self.report, self.redactor, self.report.seal.generated_at)
        return render.to_markdown(self.report, self.redactor, chart_files)

    def charts(self) -> Charts:
        return render.draw(self.report, self.redactor, self.report.seal.generated_at)


def draft(store: Store, run_id: str, now: float | None = None) -> Draft:
    """The report of run ``run_id`` (or a unique prefix of it); NotFound when none."""
    records = read(store, run_id)
    return Draft(build(records, now), redactor_of(records.row))


__all__ = [
    "FORMAT",
    "FORMATS",
    "SECTIONS",
    "Charts",
    "Draft",
    "Format",
    "Postmortem",
    "ReportCheck",
    "Seal",
    "check",
    "draft",
    "gather",
    "read_seal",
]
