"""``teams``: notices as Adaptive Cards, posted to a Microsoft Teams incoming webhook (or a
Workflows webhook, which takes the same message).

The message is ``{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "content": <card>}]}``; the card (version 1.4)
has the title (bolder, medium, coloured by severity: ``Attention`` for errors, ``Warning``,
``Good`` once the incident is over), the text, a ``FactSet`` of the notice's fields, a
subtle line with the run and its ``explain`` command, and one ``Action.OpenUrl`` per link.
Mentions that look like a user principal name (``alice@example.com``) become Teams
mentions (``<at>…</at>`` with an ``msteams.entities`` entry); others are shown as text.

A webhook answers 2xx when it took the message (``1`` from a connector, ``202`` from
Workflows). A connector may also answer 2xx with a body such as ``Microsoft Teams endpoint
returned HTTP error 429``: that is a failure too. The webhook URL is a secret: it never
appears in a receipt.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backout.channels.base import Channel, Delivery, Receipt, Sender, http_error
from backout.channels.http import retry_after
from backout.channels.notice import Notice

CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.4"
CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MESSAGE_MAX = 24_000  # bytes: a Teams message is at most about 28 KB, with some room left
TITLE_MAX = 300
TEXT_MAX = 8_000
MENTIONS_MAX = 1_000
FACT_TITLE_MAX = 200
FACT_VALUE_MAX = 1_000
FACTS_MAX = 30
FOOTER_MAX = 1_000
URL_MAX = 2_000
ACTIONS_MAX = 6
ERROR_MAX = 200
# answers that the same request will meet again: a card Teams refuses, a webhook removed
PERMANENT_STATUS = frozenset({400, 403, 404, 410})
ELLIPSIS = "…"


def clip(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, ending with an ellipsis when cut."""
    limit = max(limit, 2)
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)] + ELLIPSIS


def color(notice: Notice) -> str:
    """The title's colour: ``Good`` when the notice ends an incident, else by severity."""
    if notice.resolving:
        return "Good"
    return {"error": "Attention", "critical": "Attention", "warning": "Warning"}.get(
        notice.severity, "Default"
    )


def _is_upn(name: str) -> bool:
    local, at, domain = name.partition("@")
    return bool(local and at and "." in domain)


def card(notice: Notice, scale: float = 1.0) -> dict[str, Any]:
    """The notice as an Adaptive Card, its texts cut to ``scale`` times their limits."""

    def cut(text: str, limit: int) -> str:
        return clip(text, int(limit * scale))

    title = notice.title.strip() or notice.event
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": cut(f"{'[TEST] ' if notice.test else ''}{title}", TITLE_MAX),
            "weight": "Bolder",
            "size": "Medium",
            "color": color(notice),
            "wrap": True,
        }
    ]
    if notice.text.strip():
        body.append({"type": "TextBlock", "text": cut(notice.text.strip(), TEXT_MAX), "wrap": True})
    entities: list[dict[str, Any]] = []
    cc = "cc"
    for name in (m.strip() for m in notice.mentions if m.strip()):
        shown = f"<at>{name}</at>" if _is_upn(name) else name
        if len(cc) + 1 + len(shown) > MENTIONS_MAX * scale:
            break  # whole mentions only: a cut <at> tag would not match its entity
        cc += " " + shown
        if shown != name:
            entities.append(
                {"type": "mention", "text": shown, "mentioned": {"id": name, "name": name}}
            )
    if cc != "cc":
        body.append({"type": "TextBlock", "text": cc, "wrap": True})
    if notice.fields:
        facts = [
            {"title": cut(label, FACT_TITLE_MAX), "value": cut(value, FACT_VALUE_MAX)}
            for label, value in notice.fields[:FACTS_MAX]
        ]
        body.append({"type": "FactSet", "facts": facts})
    explain = notice.explain or f"backout explain {notice.run_id}"
    footer = f"{notice.subject} · run {notice.run_id} · {explain}"
    body.append(
        {
            "type": "TextBlock",
            "text": cut(footer, FOOTER_MAX),
            "isSubtle": True,
            "size": "Small",
            "wrap": True,
        }
    )
    content: dict[str, Any] = {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
    }
    actions = [
        {"type": "Action.OpenUrl", "title": cut(label or "Open", 100), "url": url}
        for label, url in notice.links.items()
        if url.startswith(("http://", "https://")) and len(url) <= URL_MAX
    ][:ACTIONS_MAX]
    if actions:
        content["actions"] = actions
    content["msteams"] = {"width": "Full", **({"entities": entities} if entities else {})}
    return content


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False).encode()


def message(notice: Notice) -> dict[str, Any]:
    """The webhook message: one Adaptive Card attachment, its texts cut further until the
    message fits in ``MESSAGE_MAX`` bytes."""
    for scale in (1.0, 0.5, 0.25, 0.1, 0.05):
        out = {
            "type": "message",
            "attachments": [
                {"contentType": CONTENT_TYPE, "contentUrl": None, "content": card(notice, scale)}
            ],
        }
        if len(encode(out)) <= MESSAGE_MAX:
            break
    return out


class TeamsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, defer_build=True)

    webhook_url: str = Field(
        repr=False,
        description="The channel's incoming webhook (or Workflows) URL; a secret: keep it in "
        "the environment",
    )
    timeout: float = Field(10.0, gt=0, description="Seconds per request")

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("is not an http(s) URL")
        return url


class TeamsSender(Sender):
    def __init__(self, options: TeamsOptions) -> None:
        import httpx

        self.url = options.webhook_url
        self.client = httpx.Client(
            headers={"Content-Type": "application/json; charset=utf-8"}, timeout=options.timeout
        )
        path = httpx.URL(self.url).path
        self._secrets = [s for s in (self.url, path) if len(s) > 1]

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def deliver(self, delivery: Delivery) -> Receipt:
        import httpx

        try:
            notice = Notice.of(delivery)
        except (KeyError, TypeError, ValueError) as exc:
            error = f"event {delivery.id} carries no valid notice: {exc!r}"[:ERROR_MAX]
            return Receipt(False, error, permanent=True)
        try:
            response = self.client.post(
                self.url,
                content=encode(message(notice)),
                headers={"Idempotency-Key": delivery.key},
            )
        except httpx.HTTPError as exc:
            return Receipt(False, self.scrub(f"{type(exc).__name__}: {exc}"))
        text = response.text[:ERROR_MAX]
        if not 200 <= response.status_code < 300:
            error = self.scrub(http_error(response.status_code, text))
            permanent = response.status_code in PERMANENT_STATUS
            return Receipt(False, error, retry_after=retry_after(response), permanent=permanent)
        if "returned HTTP error" in text:  # a connector's failure, answered with 200
            return Receipt(False, self.scrub(text))
        return Receipt(True)

    def close(self) -> None:
        self.client.close()


class Teams(Channel):
    kind = "teams"
    notices = True
    Options = TeamsOptions

    def open(self, options: TeamsOptions) -> TeamsSender:
        return TeamsSender(options)
