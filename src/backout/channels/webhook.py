"""``webhook``: a notice POSTed as JSON to any URL, signed the Standard Webhooks way
(https://www.standardwebhooks.com, spec version 1.0.0).

The body is ``{"type": <notify event>, "timestamp": <ISO 8601 UTC of the event>,
"data": <the notice>}``, serialized once (minified JSON, UTF-8); those exact bytes are
signed and sent. Three headers carry the signature:

* ``webhook-id``: the delivery key, the same on every retry and after a crash, so a
  receiver that remembers the ids it has processed drops a repeat;
* ``webhook-timestamp``: when this attempt was signed, in integer Unix seconds (a
  receiver rejects one too far from its clock: a replay);
* ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, one per
  configured secret, separated by spaces: to rotate a secret, configure the new one next
  to the old, move the receiver over, then drop the old one.

A secret is given as ``whsec_<base64>`` (as the Standard Webhooks libraries make and take
them): the HMAC key is the base64-decoded part after ``whsec_``. A secret without the
prefix is used as it is: the key is its UTF-8 bytes. The reference libraries
base64-decode a secret whatever its prefix, so a receiver using one of them needs the
``whsec_`` form.

:func:`verify` is a reference verifier a receiver can copy: it needs only the standard
library.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backout.channels.base import Channel, Delivery, Receipt, Sender, http_error
from backout.channels.http import retry_after
from backout.channels.notice import Notice

PREFIX = "whsec_"
SIGNATURE_HEADERS = frozenset({"webhook-id", "webhook-timestamp", "webhook-signature"})


def secret_key(secret: str) -> bytes:
    """The HMAC key of a configured secret: base64-decoded after ``whsec_``, else the
    secret's UTF-8 bytes. Raises ``ValueError`` for a ``whsec_`` secret that is not
    base64, or an empty key."""
    if secret.startswith(PREFIX):
        encoded = secret[len(PREFIX) :]
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error as exc:
            raise ValueError("a whsec_ secret must be base64 after the prefix") from exc
    else:
        key = secret.encode()
    if not key:
        raise ValueError("a webhook secret may not be empty")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` as sent with ``msg_id`` at ``timestamp``."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance: float = 300,
    now: float | None = None,
) -> None:
    """Check a received webhook: its ``webhook-timestamp`` is within ``tolerance`` seconds
    of ``now`` (default: the clock) and one of its ``v1`` signatures is the HMAC of
    ``body`` (the raw bytes, before any JSON parsing) with ``secret``. Raises
    ``ValueError`` saying what is wrong; returns nothing when the webhook is authentic.

    After it passes, drop a ``webhook-id`` already processed (a retry)."""
    lower = {name.lower(): value for name, value in headers.items()}
    missing = sorted(name for name in SIGNATURE_HEADERS if not lower.get(name))
    if missing:
        raise ValueError(f"missing header(s): {', '.join(missing)}")
    msg_id, stamp = lower["webhook-id"], lower["webhook-timestamp"]
    try:
        timestamp = int(stamp)
    except ValueError:
        raise ValueError(f"webhook-timestamp {stamp!r} is not integer seconds") from None
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise ValueError("webhook-timestamp is too old (a replay?)")
    if timestamp > current + tolerance:
        raise ValueError("webhook-timestamp is in the future")
    expected = sign(secret_key(secret), msg_id, timestamp, body).encode()
    for candidate in lower["webhook-signature"].split():
        if candidate.startswith("v1,") and hmac.compare_digest(candidate.encode(), expected):
            return
    raise ValueError("no v1 signature matches the body and the secret")


class WebhookOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built when first used

    url: str = Field(description="Where to POST, e.g. https://hooks.example.com/backout")
    secrets: list[str] = Field(
        min_length=1,
        repr=False,
        description="Signing secrets, whsec_<base64> (key: the decoded base64) or raw "
        "(key: its UTF-8 bytes); each signs every webhook, so a new one can be added next to "
        "the old while receivers move over (keep them in the environment)",
    )
    timeout: float = Field(10.0, gt=0, description="Seconds per request")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra headers sent with every webhook (not the webhook-* ones)",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r} is not an http(s) URL")
        return url

    @field_validator("secrets")
    @classmethod
    def _keys(cls, secrets: list[str]) -> list[str]:
        for secret in secrets:
            secret_key(secret)  # raises ValueError, whose message names no secret
        return secrets

    @field_validator("headers")
    @classmethod
    def _not_ours(cls, headers: dict[str, str]) -> dict[str, str]:
        taken = sorted(
            name for name in headers if name.lower() in SIGNATURE_HEADERS | {"content-type"}
        )
        if taken:
            raise ValueError(f"header(s) {', '.join(taken)} are set by the webhook itself")
        return headers


def body_of(notice: Notice, clock: Callable[[], float] = time.time) -> bytes:
    """The webhook body, serialized once: these bytes are signed and sent."""
    at = notice.at if notice.at > 0 else clock()
    timestamp = dt.datetime.fromtimestamp(at, tz=dt.UTC).isoformat().replace("+00:00", "Z")
    envelope = {"type": notice.event, "timestamp": timestamp, "data": notice.to_json()}
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


class WebhookSender(Sender):
    def __init__(self, options: WebhookOptions, clock: Callable[[], float]) -> None:
        import httpx

        self.url = options.url
        self.keys = [secret_key(secret) for secret in options.secrets]
        self.clock = clock
        self.client = httpx.Client(headers=options.headers, timeout=options.timeout)

    def deliver(self, delivery: Delivery) -> Receipt:
        import httpx

        body = body_of(Notice.of(delivery), self.clock)
        timestamp = int(self.clock())
        signatures = " ".join(sign(key, delivery.key, timestamp, body) for key in self.keys)
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery.key,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signatures,
        }
        try:
            response = self.client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return Receipt(False, f"{type(exc).__name__}: {exc}")
        if 200 <= response.status_code < 300:
            return Receipt(True)
        error = http_error(response.status_code, response.text)
        if response.status_code == 410:
            error = "HTTP 410 Gone: the receiver asks for no more webhooks (remove the route)"
        return Receipt(False, error, retry_after=retry_after(response))

    def close(self) -> None:
        self.client.close()


class Webhook(Channel):
    """``clock`` (Unix seconds) stamps each attempt (a test passes a fake)."""

    kind = "webhook"
    notices = True
    Options = WebhookOptions

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    def open(self, options: WebhookOptions) -> WebhookSender:
        return WebhookSender(options, self.clock)
