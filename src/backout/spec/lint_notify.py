"""Lint rules for the ``notify:`` section: a message or a channel that could never render,
a route to an environment that does not exist, a channel nothing is sent to."""

from __future__ import annotations

from collections.abc import Iterator

from backout.errors import Issue
from backout.spec.loader import LoadedPlan
from backout.spec.templating import is_template, parse_error, usage, walk_strings
from backout.spec.yamlfile import unknown_key_hint

Where = tuple[str | int, ...]
# a channel's options are rendered when sending, with the sender's environment variables
CHANNEL_SCOPE = ("secrets", "environment", "env")
MESSAGE_SCOPE = ("run", "event", "notice", "environment")


def notify_rules(loaded: LoadedPlan) -> Iterator[Issue]:
    notify = loaded.plan.notify
    if notify is None:
        return
    routed = {name for route in notify.routes for name in route.to}
    routed |= {name for level in notify.escalation for name in level.to}
    routed |= set(notify.updates.to) if notify.updates else set()
    for name, channel in notify.channels.items():
        where: Where = ("notify", "channels", name, channel.kind)
        for path, text in walk_strings(channel.options):
            yield from _template(loaded, (*where, *path), text, CHANNEL_SCOPE)
        if name not in routed:
            yield loaded.issue(
                ("notify", "channels", name),
                f"channel {name!r} is in no route: nothing is ever sent to it",
                f"add it to a route, e.g. {{events: ['*'], to: [{name}]}}",
                "warning",
            )
    for event, text in notify.messages.items():
        yield from _template(loaded, ("notify", "messages", event), text, MESSAGE_SCOPE)
    declared = set(loaded.plan.environments)
    for index, route in enumerate(notify.routes):
        for env in route.environments or []:
            if env not in declared:
                yield loaded.issue(
                    ("notify", "routes", index, "environments"),
                    f"route names environment {env!r}, which `environments:` does not declare",
                    unknown_key_hint(env, sorted(declared), "declared")
                    if declared
                    else "declare it under environments:",
                )


def _template(
    loaded: LoadedPlan, where: Where, text: str, scope: tuple[str, ...]
) -> Iterator[Issue]:
    if not is_template(text):
        return
    error = parse_error(text)
    if error:
        yield loaded.issue(where, f"template does not parse: {error}", "check the {{ }} braces")
        return
    used = usage(text)
    for name in sorted(used.names - set(scope)):
        yield loaded.issue(
            where,
            f"template uses unknown name {name!r}",
            unknown_key_hint(name, list(scope), "names in scope here"),
        )
    secrets = sorted(loaded.plan.secrets)
    for key in sorted(used.keys_of("secrets") - set(secrets)):
        yield loaded.issue(
            where,
            f"template uses secrets.{key}, which `secrets:` does not declare",
            unknown_key_hint(key, secrets, "declared") if secrets else "declare it under secrets:",
        )
