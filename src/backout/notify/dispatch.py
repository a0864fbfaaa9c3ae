"""Send queued notifications: each outbox row names its channel (kind and options, as the
plan wrote them); the dispatcher renders the options with the secrets read now (never
stored), opens that channel once per send, and hands it the delivery. Receipts are
redacted: an error never shows a token or a webhook URL."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from backout.channels.base import CHANNELS, Channel, Delivery, Receipt, Sender
from backout.channels.delivery import Route
from backout.errors import BackoutError
from backout.notify.hook import ROUTE_PREFIX
from backout.redact import Redactor
from backout.spec.models import Secret
from backout.spec.secrets import read_secrets
from backout.spec.templating import render_value


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Opened:
    def __init__(self, sender: Sender, redactor: Redactor) -> None:
        self.sender = sender
        self.redactor = redactor


class Dispatcher(Sender):
    """Delivers each notification through the channel its row names."""

    def __init__(self) -> None:
        self.opened: dict[str, _Opened] = {}

    def deliver(self, delivery: Delivery) -> Receipt:
        spec = delivery.payload.get("channel") or {}
        key = json.dumps([spec, delivery.payload.get("secrets")], sort_keys=True, default=str)
        opened = self.opened.get(key) or self._open(spec, delivery.payload)
        if isinstance(opened, Receipt):
            return opened  # cannot be opened now (a missing secret, bad options): next time
        self.opened[key] = opened
        try:
            receipt = opened.sender.deliver(delivery)
        except Exception as exc:  # a plugin's bug must not stop the other deliveries
            receipt = Receipt(False, f"channel {spec.get('name')!r} raised {exc!r}")
        redact = opened.redactor
        return replace(receipt, error=redact(receipt.error), warning=redact(receipt.warning))

    def _open(self, spec: dict[str, Any], payload: dict[str, Any]) -> _Opened | Receipt:
        name, kind = spec.get("name", "?"), str(spec.get("kind", ""))
        if kind not in CHANNELS:
            return Receipt(False, f"channel {name!r}: no channel kind {kind!r} is installed")
        channel = CHANNELS.get(kind)
        try:
            secrets = read_secrets(
                {n: Secret(**source) for n, source in (payload.get("secrets") or {}).items()},
                Path("/"),
            )
        except BackoutError as exc:
            return Receipt(False, f"channel {name!r}: {exc.message}")
        redactor = Redactor(secrets.values())
        scope = {
            "secrets": secrets,
            "environment": payload.get("environment") or {},
            "env": dict(os.environ),  # the sending process's, like the secrets it reads
        }
        try:
            options = channel.Options.model_validate(render_value(spec.get("options"), scope))
        except BackoutError as exc:
            return Receipt(False, redactor(f"channel {name!r}: {exc.message}"))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            return Receipt(False, redactor(f"channel {name!r} options: {problems}"))
        return _Opened(channel.open(options), redactor)

    def close(self) -> None:
        for opened in self.opened.values():
            opened.sender.close()


class Notifications(Channel):
    """Every notify channel at once (route ``notify:*``). Not in the registry: a plan
    names the real kinds (slack, pagerduty …); this one only routes to them."""

    kind = "notify"
    Options: ClassVar[type[BaseModel]] = NoOptions
    notices = True

    def open(self, options: Any) -> Dispatcher:
        return Dispatcher()


def notify_route(
    retry_delay: float = 1.0, max_attempts: int = 10, prefix: str = ROUTE_PREFIX
) -> Route:
    """The route that delivers every queued notification."""
    return Route(
        prefix,
        Notifications(),
        NoOptions(),
        retry_delay=retry_delay,
        max_attempts=max_attempts,
        prefix=True,
    )
