"""``backout status-page build OUT_DIR``: a static, self-contained page that can be hosted
away from the system it reports on — ``index.html`` (inline CSS, no script, no font or
image fetched: it works from ``file://``), ``status.json`` (Statuspage's summary),
``incidents.json`` and ``feed.atom``. Each file is written to a temporary name in OUT_DIR
and renamed over the old one, so a web server never serves half a file."""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from backout.errors import UsageError
from backout.statuspage.feed import atom
from backout.statuspage.page import Incident
from backout.statuspage.states import INDICATOR_DESCRIPTIONS
from backout.statuspage.summary import incidents_document, indicator, iso, summary
from backout.statuspage.visibility import PublicPage

FILES = ("index.html", "status.json", "incidents.json", "feed.atom")
LABELS = {
    "operational": "Operational",
    "under_maintenance": "Under maintenance",
    "degraded_performance": "Degraded performance",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
}


@dataclass(frozen=True)
class Written:
    out_dir: Path
    files: list[Path]
    indicator: str


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("backout.statuspage", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _when(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _incident_view(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "title": incident.title,
        "status": incident.status,
        "phase": incident.status.capitalize(),
        "impact": incident.impact,
        "component": incident.component,
        "started": _when(incident.created_at),
        "resolved": _when(incident.resolved_at) if incident.resolved_at else None,
        "updates": [
            {
                "phase": u.status.capitalize(),
                "message": u.message,
                "when": _when(u.at),
                "iso": iso(u.at),
            }
            for u in reversed(incident.updates)
        ],
    }


def render_html(page: PublicPage, days: float) -> str:
    groups: dict[str | None, list[dict[str, Any]]] = {}
    for published in page.components:
        component = published.component
        groups.setdefault(component.group, []).append(
            {
                "name": component.name,
                "description": component.description,
                "status": component.status,
                "label": LABELS[component.status],
            }
        )
    level = indicator(page)
    return (
        _environment()
        .get_template("index.html.j2")
        .render(
            title=page.title,
            indicator=level,
            description=INDICATOR_DESCRIPTIONS[level],
            groups=list(groups.items()),
            open=[_incident_view(i) for i in page.incidents if i.is_open],
            past=[_incident_view(i) for i in page.incidents if not i.is_open],
            maintenances=[
                {
                    "id": m.id,
                    "title": m.title,
                    "status": m.status,
                    "label": "In progress" if m.status == "in_progress" else "Scheduled",
                    "component": m.component,
                    "start": _when(m.scheduled_for),
                    "end": _when(m.scheduled_until),
                    "start_iso": iso(m.scheduled_for),
                    "end_iso": iso(m.scheduled_until),
                }
                for m in page.maintenances
            ],
            days=f"{days:g}",
            built=_when(page.at),
            built_iso=iso(page.at),
        )
    )


def _json(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


def write_site(out_dir: Path, page: PublicPage, days: float) -> Written:
    """Write every file of the page into ``out_dir`` (made if missing)."""
    folder = prepare(out_dir)
    makers: dict[str, Callable[[], bytes]] = {
        "status.json": lambda: _json(summary(page)),
        "incidents.json": lambda: _json(incidents_document(page)),
        "feed.atom": lambda: atom(page),
        "index.html": lambda: render_html(page, days).encode(),
    }
    written = [_replace(folder / name, makers[name]()) for name in FILES]
    return Written(folder, written, indicator(page))


def prepare(out_dir: Path) -> Path:
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(
            f"{out_dir} is a file, not a folder",
            hint="give the folder the page goes into (it is made if missing)",
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot make {out_dir}: {exc.strerror}", hint="can this user write there?"
        ) from exc
    return out_dir


def _replace(path: Path, data: bytes) -> Path:
    """Write to a temporary file next to ``path``, then rename it over ``path``."""
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o644)  # a page to publish: readable by the web server
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise UsageError(
            f"cannot write {path}: {exc.strerror}", hint="can this user write the folder?"
        ) from exc
    return path
