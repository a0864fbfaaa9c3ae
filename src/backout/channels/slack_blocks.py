"""Slack Block Kit messages made from a notice, within Block Kit's documented limits (see
the ``slack`` channel's docstring): texts cut in UTF-16 code units, never inside a
character or an escape; mentions in Slack's syntax; buttons for the notice's links."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from backout.channels.notice import Notice

HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
FIELDS_MAX = 10
FIELDS_TOTAL = 8000  # all fields together: see msg_blocks_too_long in the module's docstring
CONTEXT_MAX = 10
BUTTONS_MAX = 25
BUTTON_TEXT_MAX = 75
BUTTON_URL_MAX = 3000
FALLBACK_MAX = 3000  # the top-level text (Slack truncates at 40,000; notifications show less)
ERROR_MAX = 200

ELLIPSIS = "…"
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")
_SPECIAL = {"here", "channel", "everyone"}
_SLACK_SYNTAX = re.compile(r"^<[@#!][^<>&\s]+>$")  # <@U…>, <!subteam^S…>, <#C…>, <!here>

SEVERITY_EMOJI = {
    "info": ":information_source:",
    "warning": ":warning:",
    "error": ":red_circle:",
    "critical": ":rotating_light:",
}
RESOLVED_EMOJI = ":large_green_circle:"


def units(text: str) -> int:
    """The length of ``text`` in UTF-16 code units: what a JavaScript ``length`` counts, and
    never less than its number of characters however Slack counts them."""
    return len(text.encode("utf-16-le")) // 2


def _clip_pieces(pieces: Iterable[str], limit: int) -> str:
    """Join ``pieces`` (each kept whole: a character or an escape) into at most ``limit``
    units, ending with an ellipsis when something was cut."""
    pieces = list(pieces)
    if sum(units(p) for p in pieces) <= limit:
        return "".join(pieces)
    budget = limit - units(ELLIPSIS)
    kept: list[str] = []
    used = 0
    for piece in pieces:
        size = units(piece)
        if used + size > budget:
            break
        kept.append(piece)
        used += size
    return "".join(kept) + ELLIPSIS


def plain(text: str, limit: int) -> str:
    """``text`` for a ``plain_text`` object, cut to ``limit``."""
    return _clip_pieces(text, limit)


def mrkdwn(text: str, limit: int) -> str:
    """``text`` escaped for ``mrkdwn`` (``&`` ``<`` ``>`` only), cut to ``limit``."""
    return _clip_pieces((_ESCAPES.get(c, c) for c in text), limit)


def mention(name: str) -> str:
    """A mention in mrkdwn: ``U…``/``W…`` user ids as ``<@U…>``, ``S…`` user group ids as
    ``<!subteam^S…>``, ``here``/``channel``/``everyone`` as ``<!here>`` …; text already in
    Slack's ``<…>`` syntax as it is; anything else (a display name) as plain ``@name``,
    which Slack shows but does not notify."""
    name = name.strip()
    if _SLACK_SYNTAX.match(name):
        return name
    bare = name.removeprefix("@").removeprefix("!")
    if _USER_ID.match(bare):
        return f"<@{bare}>"
    if _GROUP_ID.match(bare):
        return f"<!subteam^{bare}>"
    if bare in _SPECIAL:
        return f"<!{bare}>"
    return mrkdwn("@" + bare, 100)


def _mentions_line(mentions: list[str], limit: int) -> str:
    """The mentions, whole ones only, in at most ``limit`` units."""
    line = ""
    for name in mentions:
        if not name.strip():
            continue
        candidate = f"{line} {mention(name)}" if line else mention(name)
        if units(candidate) > limit:
            break
        line = candidate
    return line


def _header(notice: Notice) -> str:
    emoji = RESOLVED_EMOJI if notice.resolving else SEVERITY_EMOJI.get(notice.severity, "")
    title = notice.title.strip() or notice.event
    return plain(f"{emoji} {'[TEST] ' if notice.test else ''}{title}".strip(), HEADER_MAX)


def _section_text(notice: Notice) -> str:
    cc = _mentions_line(notice.mentions, SECTION_MAX // 3)
    budget = SECTION_MAX - (units(cc) + 2 if cc else 0)
    text = mrkdwn(notice.text.strip(), budget) if notice.text.strip() else ""
    return "\n\n".join(part for part in (text, cc) if part)


def _field(label: str, value: str, limit: int) -> dict[str, str]:
    head = f"*{mrkdwn(label, 200)}*\n"
    return {"type": "mrkdwn", "text": head + mrkdwn(value, limit - units(head))}


def _fields(notice: Notice) -> list[dict[str, str]]:
    pairs = notice.fields
    limit = min(FIELD_MAX, FIELDS_TOTAL // min(len(pairs), FIELDS_MAX))
    if len(pairs) <= FIELDS_MAX:
        return [_field(label, value, limit) for label, value in pairs]
    shown = [_field(label, value, limit) for label, value in pairs[: FIELDS_MAX - 1]]
    more = len(pairs) - (FIELDS_MAX - 1)
    shown.append(_field(ELLIPSIS, f"{more} more: see the explain command", limit))
    return shown


def _context(notice: Notice) -> list[dict[str, str]]:
    explain = notice.explain or f"backout explain {notice.run_id}"
    parts = [f"*{mrkdwn(notice.subject, 500)}*" if notice.subject else ""]
    parts.append(f"run `{mrkdwn(notice.run_id, 500)}`")
    parts.append(f"`{mrkdwn(explain, 1000)}`")
    if notice.test:
        parts.append("_test notification_")
    return [{"type": "mrkdwn", "text": p} for p in parts if p][:CONTEXT_MAX]


def _buttons(notice: Notice) -> list[dict[str, Any]]:
    buttons: list[dict[str, Any]] = []
    for label, url in notice.links.items():
        if not url or units(url) > BUTTON_URL_MAX:
            continue  # a button's url is at most 3000 characters; no button beats a bad one
        buttons.append(
            {
                "type": "button",
                "text": {"type": "plain_text", "text": plain(label or "Open", BUTTON_TEXT_MAX)},
                "url": url,
                "action_id": f"link-{len(buttons)}",
            }
        )
        if len(buttons) == BUTTONS_MAX:
            break
    return buttons


def blocks(notice: Notice) -> list[dict[str, Any]]:
    """The notice as Block Kit blocks: header, text (with mentions), fields, context, links."""
    out: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _header(notice), "emoji": True}}
    ]
    text = _section_text(notice)
    if text:
        out.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    if notice.fields:
        out.append({"type": "section", "fields": _fields(notice)})
    out.append({"type": "context", "elements": _context(notice)})
    buttons = _buttons(notice)
    if buttons:
        out.append({"type": "actions", "elements": buttons})
    return out


def message(notice: Notice) -> dict[str, Any]:
    """``text`` (the fallback shown in notifications) and ``blocks``."""
    title = notice.title.strip() or notice.event
    fallback = f"{'[TEST] ' if notice.test else ''}{title}"
    if notice.subject:
        fallback += f" ({notice.subject})"
    return {"text": mrkdwn(fallback, FALLBACK_MAX), "blocks": blocks(notice)}
