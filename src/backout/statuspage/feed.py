"""The Atom 1.0 feed (RFC 4287): one entry per published incident update, newest first.
Built with ElementTree (well-formed by construction), from a :class:`PublicPage` only."""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET

from backout.statuspage.page import Incident, Update
from backout.statuspage.summary import iso
from backout.statuspage.visibility import PublicPage

ATOM = "http://www.w3.org/2005/Atom"
# characters XML 1.0 cannot carry at all, even escaped
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

ET.register_namespace("", ATOM)


def _text(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)


def _add(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
    if text is not None:
        element.text = _text(text)
    return element


def _urn(page: PublicPage, *parts: object) -> str:
    """A permanent id for the feed or an entry: the same in every build."""
    name = "/".join(str(p) for p in (page.id, *parts))
    return uuid.uuid5(uuid.NAMESPACE_URL, f"backout-status-page:{name}").urn


def _link(page: PublicPage, target: str) -> str:
    """Absolute when the page's URL is known; else relative to the feed, which sits next
    to the page (allowed by RFC 4287: an IRI reference)."""
    return f"{page.url.rstrip('/')}/{target}" if page.url else target


def atom(page: PublicPage) -> bytes:
    feed = ET.Element(f"{{{ATOM}}}feed")
    _add(feed, "title", page.title)
    _add(feed, "subtitle", "Incidents and their updates")
    _add(feed, "id", _urn(page, "feed"))
    entries = sorted(
        ((incident, update) for incident in page.incidents for update in incident.updates),
        key=lambda pair: (pair[1].at, pair[1].id),
        reverse=True,
    )
    _add(feed, "updated", iso(entries[0][1].at if entries else page.at))
    _add(feed, "link", rel="self", type="application/atom+xml", href=_link(page, "feed.atom"))
    _add(feed, "link", rel="alternate", type="text/html", href=_link(page, "index.html"))
    author = _add(feed, "author")
    _add(author, "name", page.title)
    _add(feed, "generator", "backout")
    for incident, update in entries:
        _entry(feed, page, incident, update)
    ET.indent(feed)
    document: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return document + b"\n"


def _entry(feed: ET.Element, page: PublicPage, incident: Incident, update: Update) -> None:
    entry = _add(feed, "entry")
    _add(entry, "id", _urn(page, "incident", incident.id, "update", update.id))
    _add(entry, "title", f"{incident.title} — {update.status.capitalize()}")
    _add(entry, "updated", iso(update.at))
    _add(entry, "published", iso(update.at))
    href = _link(page, f"index.html#incident-{incident.id}")
    _add(entry, "link", rel="alternate", type="text/html", href=href)
    _add(entry, "category", term=update.status)
    _add(entry, "content", f"{update.status.capitalize()} — {update.message}", type="text")
