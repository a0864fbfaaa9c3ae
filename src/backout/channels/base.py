"""What a channel is: a kind of destination the outbox delivers to (an ITSM tool today;
chat, paging and webhooks build on it), registered by name from the built-ins and the
``backout.channels`` entry point group.

A channel gets one :class:`Delivery` at a time, outside any transaction, and answers with
a :class:`Receipt`. Every delivery carries a ``key`` that stays the same across retries,
resumed runs and a second sender: send it to the receiver (an ``Idempotency-Key`` header,
PagerDuty's ``dedup_key``…) so that a delivery repeated after a crash is dropped there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backout.plugins import Registry

CLAIM_S = 30.0  # seconds a sender holds a claimed delivery before another may take it


def http_error(status: int, text: str, limit: int = 200) -> str:
    """A receiver's refusal in one line: ``HTTP 401`` or ``HTTP 400: why`` (its body, cut
    at ``limit`` characters; an empty body adds nothing)."""
    text = text.strip()[:limit]
    return f"HTTP {status}: {text}" if text else f"HTTP {status}"


@dataclass(frozen=True)
class Delivery:
    """One outbound event, as the channel sees it.

    ``stream`` orders events (``change:7``, ``run:ab12…``): a later one is never sent while
    an earlier one of its stream is pending. ``ref`` is what the receiver named for this
    stream when its first event was delivered (a ServiceNow ``sys_id``, a Jira key, a Slack
    thread), ``None`` before that."""

    id: int
    key: str
    route: str
    stream: str
    event: str
    payload: dict[str, Any]
    ref: str | None = None


@dataclass(frozen=True)
class Receipt:
    """How a delivery went. ``ok``: the receiver acknowledged it (``ref`` names what it
    created, if anything). Not ok: ``error`` says why; it is retried with backoff, after
    ``retry_after`` seconds when the receiver asked for that (HTTP 429/503 ``Retry-After``);
    ``permanent``: retrying cannot help (an invalid event, a mailbox that does not exist),
    so it is dead-lettered at once."""

    ok: bool
    error: str = ""
    ref: str | None = None
    retry_after: float | None = None
    warning: str = ""
    permanent: bool = False


class ChannelOptions(BaseModel):
    """Settings every HTTP channel takes: the base URL, a bearer token, a request timeout."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built when first used

    url: str = Field(description="The service's base URL, e.g. https://acme.service-now.com")
    token: str | None = Field(None, description="Bearer token (keep it in the environment)")
    timeout: float = Field(10.0, gt=0, description="Seconds per request")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r} is not an http(s) URL")
        return url.rstrip("/")


class Sender(AbstractContextManager["Sender"]):
    """An open connection to one destination; ``deliver`` is called once per delivery."""

    @abstractmethod
    def deliver(self, delivery: Delivery) -> Receipt: ...

    def close(self) -> None:
        """Release connections (called once, when the send ends)."""

    def __exit__(self, *exc: object) -> None:
        self.close()


class Channel(ABC):
    """A kind of destination. Subclass it, name it with ``kind``, give its ``Options``
    model, and register it under the ``backout.channels`` entry point group."""

    kind: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = ChannelOptions
    notices: ClassVar[bool] = False  # True: delivers notifications (a Notice per delivery)

    def needs_ref(self, delivery: Delivery) -> bool:
        """True when this delivery can only go out once its stream has a ``ref`` (a comment
        needs the record it comments on). Such a delivery waits; nothing is sent."""
        return False

    @abstractmethod
    def open(self, options: Any) -> Sender:
        """Connect with validated ``options`` (an instance of ``Options``)."""


CHANNELS: Registry[Channel] = Registry("channel", "backout.channels")
