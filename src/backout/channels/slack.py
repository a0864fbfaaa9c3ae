"""``slack``: notices as Slack Block Kit messages, through an incoming webhook or the Web API.

With ``webhook_url`` each notice is a new message in the webhook's channel (Slack answers
``200 ok``; errors are HTTP 4xx/5xx with a short code such as ``invalid_payload``).

With a bot ``token`` and a ``channel`` the first notice of a stream (a run) is posted with
``chat.postMessage`` and becomes the run's header message: its ``ref`` is
``"<channel id>:<ts>"`` (``chat.update`` takes a channel id, never a name). Each later
notice updates that header with ``chat.update`` (so it always shows the latest state) and is
posted as a reply in its thread (``thread_ts``); replies that ask someone to act are also
broadcast to the channel. The Web API answers HTTP 200 with ``{"ok": false, "error": …}``
on errors, and HTTP 429 with ``Retry-After`` when rate limited.

Block Kit limits, as documented: a ``header`` holds plain text of at most 150 characters, a
``section`` text at most 3000 and at most 10 ``fields`` of at most 2000 each, a ``context``
at most 10 elements, an ``actions`` block at most 25 buttons (label at most 75 characters,
``url`` at most 3000). Slack also refuses a message whose blocks hold too much text
altogether (``msg_blocks_too_long``, undocumented, reported near 13,000 characters), so the
fields share 8000 characters. Texts are cut to fit, counted in UTF-16 code units (never fewer than
Slack's characters), and never in the middle of a character or of an escape
(``&amp;`` ``&lt;`` ``&gt;``, as mrkdwn requires for those three characters).

The token and the webhook URL are secrets: they never appear in a receipt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from backout.channels.base import Channel, Delivery, Receipt, Sender, http_error
from backout.channels.http import retry_after
from backout.channels.notice import ACTIONABLE, Notice
from backout.channels.slack_blocks import ERROR_MAX, message

if TYPE_CHECKING:
    import httpx


class SlackOptions(BaseModel):
    """An incoming webhook, or a bot token with a channel: exactly one of the two."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, defer_build=True)

    webhook_url: str | None = Field(
        None,
        repr=False,
        description="An incoming webhook URL (a secret: keep it in the environment); "
        "messages go to the channel it was created for",
    )
    token: str | None = Field(
        None,
        repr=False,
        description="A bot token (xoxb-…, keep it in the environment) with chat:write; "
        "a run's first message is updated and later ones reply in its thread",
    )
    channel: str | None = Field(
        None, description="With a token: the channel to post to, e.g. #ops or C0123456789"
    )
    api_url: str = Field("https://slack.com/api", description="The Slack Web API base URL")
    timeout: float = Field(10.0, gt=0, description="Seconds per request")

    @field_validator("webhook_url", "api_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("is not an http(s) URL")
        return url.rstrip("/") if url is not None else None

    @model_validator(mode="after")
    def _one_way_in(self) -> SlackOptions:
        if self.webhook_url and self.token:
            raise ValueError(
                "give either webhook_url (an incoming webhook) or token (a bot token, with "
                "channel), not both"
            )
        if not self.webhook_url and not self.token:
            raise ValueError(
                "give either webhook_url (an incoming webhook) or token (a bot token, with channel)"
            )
        if self.token and not (self.channel and self.channel.strip()):
            raise ValueError("a token needs a channel to post to, e.g. #ops or C0123456789")
        if self.webhook_url and self.channel:
            raise ValueError(
                "channel goes with a token; an incoming webhook posts to the channel it was "
                "created for"
            )
        return self


class SlackSender(Sender):
    """What both ways of posting share: one HTTP client, JSON bodies, secrets scrubbed."""

    def __init__(self, options: SlackOptions) -> None:
        import httpx

        self.options = options
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if options.token:
            headers["Authorization"] = f"Bearer {options.token}"
        self.client = httpx.Client(headers=headers, timeout=options.timeout)
        secrets = [options.token or "", options.webhook_url or ""]
        if options.webhook_url:
            secrets.append(httpx.URL(options.webhook_url).path)  # a hook's path is its secret
        self._secrets = sorted((s for s in secrets if len(s) > 1), key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def post(self, url: str, body: dict[str, Any], key: str) -> httpx.Response | Receipt:
        """POST ``body``: the response, or a not-ok receipt on a transport error."""
        import httpx

        try:
            return self.client.post(
                url, content=json.dumps(body).encode(), headers={"Idempotency-Key": key}
            )
        except httpx.HTTPError as exc:
            return Receipt(False, self.scrub(f"{type(exc).__name__}: {exc}"))

    def close(self) -> None:
        self.client.close()


def _notice(delivery: Delivery) -> Notice | Receipt:
    try:
        return Notice.of(delivery)
    except (KeyError, TypeError, ValueError) as exc:
        error = f"event {delivery.id} carries no valid notice: {exc!r}"[:ERROR_MAX]
        return Receipt(False, error, permanent=True)


class WebhookSender(SlackSender):
    def deliver(self, delivery: Delivery) -> Receipt:
        notice = _notice(delivery)
        if isinstance(notice, Receipt):
            return notice
        assert self.options.webhook_url is not None
        response = self.post(self.options.webhook_url, message(notice), delivery.key)
        if isinstance(response, Receipt):
            return response
        if 200 <= response.status_code < 300:
            return Receipt(True)
        error = self.scrub(http_error(response.status_code, response.text, ERROR_MAX))
        permanent = response.status_code in PERMANENT_STATUS
        return Receipt(False, error, retry_after=retry_after(response), permanent=permanent)


@dataclass(frozen=True)
class Answer:
    """How one Web API call went: ``receipt`` is None when Slack said ``ok``; ``transient``
    when retrying may help (a transport error, HTTP 408/429/5xx, ``ratelimited``…)."""

    body: dict[str, Any]
    receipt: Receipt | None = None
    transient: bool = False


TRANSIENT_ERRORS = frozenset({"ratelimited", "internal_error", "fatal_error", "request_timeout"})
# Web API errors that the same request will meet again: the event is dead-lettered at once
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "is_archived",
        "not_in_channel",
        "restricted_action",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "msg_blocks_too_long",
        "message_not_found",
        "thread_not_found",
        "no_text",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "missing_scope",
    }
)
# incoming webhook answers that the same request will meet again (invalid_payload,
# action_prohibited, channel_not_found, channel_is_archived)
PERMANENT_STATUS = frozenset({400, 403, 404, 410})


class ApiSender(SlackSender):
    def call(self, method: str, body: dict[str, Any], key: str) -> Answer:
        """Call a Web API method (HTTP 200 with ``ok: false`` is a failure too)."""
        response = self.post(f"{self.options.api_url}/{method}", body, key)
        if isinstance(response, Receipt):
            return Answer({}, response, transient=True)
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        answer = answer if isinstance(answer, dict) else {}
        wait = retry_after(response)
        if not 200 <= response.status_code < 300:
            detail = str(answer.get("error") or response.text[:ERROR_MAX])
            error = self.scrub(f"{method}: HTTP {response.status_code}: {detail}")
            transient = response.status_code in (408, 429) or response.status_code >= 500
            permanent = response.status_code in PERMANENT_STATUS
            receipt = Receipt(False, error, retry_after=wait, permanent=permanent)
            return Answer(answer, receipt, transient)
        if answer.get("ok") is not True:
            code = str(answer.get("error") or "the answer has no ok")
            error = self.scrub(f"{method}: {code}")
            receipt = Receipt(False, error, retry_after=wait, permanent=code in PERMANENT_ERRORS)
            return Answer(answer, receipt, code in TRANSIENT_ERRORS)
        return Answer(answer)

    def deliver(self, delivery: Delivery) -> Receipt:
        notice = _notice(delivery)
        if isinstance(notice, Receipt):
            return notice
        body = message(notice)
        if delivery.ref is None:
            return self._open(delivery, body)
        return self._follow(delivery, notice, body)

    def _open(self, delivery: Delivery, body: dict[str, Any]) -> Receipt:
        """The stream's first message: its header, named ``channel id:ts``."""
        answer = self.call(
            "chat.postMessage", {"channel": self.options.channel, **body}, delivery.key
        )
        if answer.receipt is not None:
            return answer.receipt
        ts = answer.body.get("ts")
        if not ts:
            return Receipt(True, warning="chat.postMessage answered without ts: no thread")
        return Receipt(True, ref=f"{answer.body.get('channel') or self.options.channel}:{ts}")

    def _follow(self, delivery: Delivery, notice: Notice, body: dict[str, Any]) -> Receipt:
        """A later message: the header shows it (chat.update, done first: doing it again
        changes nothing), then it is posted in the header's thread."""
        assert delivery.ref is not None
        channel, _, ts = delivery.ref.rpartition(":")
        channel = channel or str(self.options.channel)
        warning = ""
        update = self.call(
            "chat.update", {"channel": channel, "ts": ts, **body}, delivery.key + "-update"
        )
        if update.receipt is not None:
            if update.transient:
                return update.receipt  # nothing was posted yet: retry the whole delivery
            warning = f"the run's first message was not updated: {update.receipt.error}"
        reply = {"channel": channel, "thread_ts": ts, **body}
        if notice.event in ACTIONABLE:
            reply["reply_broadcast"] = True
        posted = self.call("chat.postMessage", reply, delivery.key)
        if posted.receipt is not None:
            return posted.receipt
        return Receipt(True, warning=warning)


class Slack(Channel):
    kind = "slack"
    notices = True
    Options = SlackOptions

    def open(self, options: SlackOptions) -> SlackSender:
        if options.webhook_url:
            return WebhookSender(options)
        return ApiSender(options)
