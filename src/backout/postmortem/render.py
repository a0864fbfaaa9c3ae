"""Write a :class:`~backout.postmortem.model.Postmortem` as Markdown, self-contained HTML
(inline CSS, inline SVG) or JSON. Every string is redacted before it reaches a template or
a chart, so the known secrets appear nowhere in a report."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Literal

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from backout.postmortem import charts, sections
from backout.postmortem.model import FORMAT, Postmortem
from backout.postmortem.seal import comment
from backout.redact import Redactor

Format = Literal["md", "html", "json"]
FORMATS: tuple[Format, ...] = ("md", "html", "json")
SECTIONS = (
    "Summary",
    "Impact",
    "Trigger and detection",
    "Resolution",
    "Timeline",
    "Lessons learned",
    "Action items",
    "Seal",
)
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<|])")  # each line starts with "- " or "| "


def md(value: Any) -> str:
    """Text as Markdown shows it literally, on one line."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(value).split()))


def cites(seqs: list[int], html: bool = False) -> str | Markup:
    if not seqs:
        return ""
    if html:
        links = ", ".join(f'<a href="#e{int(s)}">#{int(s)}</a>' for s in seqs)
        return Markup(f' <span class="cite">[{links}]</span>')  # noqa: S704 - ints only
    return " [" + ", ".join(f"#{s}" for s in seqs) + "]"


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("backout.postmortem", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = md
    env.filters["cites"] = cites
    return env


_ENV = _environment()


@dataclass(frozen=True)
class Charts:
    signal: str | None
    steps: str | None


def draw(pm: Postmortem, redactor: Redactor, now: float | None = None) -> Charts:
    at = time.time() if now is None else now
    return Charts(charts.signal_chart(pm, redactor), charts.gantt_chart(pm, redactor, at))


def context(pm: Postmortem, redactor: Redactor) -> dict[str, Any]:
    """What the templates see: the report's data and its sections as lines, redacted."""
    data = {
        **pm.to_json(),
        "impact": sections.impact(pm),
        "detection": sections.detection(pm),
        "moments_table": sections.moments(pm),
        "intervals": sections.intervals(pm),
        "restore": sections.restore(pm),
        "step_rows": sections.step_rows(pm),
        "check_rows": sections.check_rows(pm),
        "went_well": sections.lessons(pm, "went_well"),
        "went_wrong": sections.lessons(pm, "went_wrong"),
        "lucky": sections.lessons(pm, "lucky"),
        "actions": sections.lessons(pm, "action"),
        "timeline": [{**e, "when": sections.utc(e["at"])} for e in pm.to_json()["timeline"]],
        "created": sections.utc(pm.moments.created_at, precise=False),
        "generated": sections.utc(pm.seal.generated_at, precise=False),
    }
    redacted: dict[str, Any] = redactor.value(data)
    return redacted


def to_json(pm: Postmortem, redactor: Redactor) -> str:
    document = {"format": FORMAT, **redactor.value(pm.to_json())}
    return json.dumps(document, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def to_markdown(
    pm: Postmortem, redactor: Redactor, chart_files: dict[str, str] | None = None
) -> str:
    """Markdown; ``chart_files`` (chart -> a path relative to the report) links the charts
    written alongside it, else the report says where to see them (the HTML report)."""
    template = _ENV.get_template("report.md.j2")
    return template.render(
        **context(pm, redactor), charts=chart_files or {}, seal_comment=comment(pm.seal)
    )


def to_html(pm: Postmortem, redactor: Redactor, now: float | None = None) -> str:
    drawn = draw(pm, redactor, now)
    template = _ENV.get_template("report.html.j2")
    return template.render(
        **context(pm, redactor),
        signal_svg=Markup(drawn.signal) if drawn.signal else None,  # noqa: S704 - escaped
        steps_svg=Markup(drawn.steps) if drawn.steps else None,  # noqa: S704 - escaped
        seal_comment=Markup(comment(pm.seal)),  # noqa: S704 - JSON of hashes and ids
    )
