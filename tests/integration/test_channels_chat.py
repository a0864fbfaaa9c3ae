"""The chat channels against real local HTTP servers standing in for Slack and Teams.

The stand-ins do not just record what they are sent: each checks every payload against the
rules the services document (Block Kit's block types and limits, mrkdwn escaping, threads
that exist, messages that exist before they are updated; the Adaptive Card shape, through a
JSON Schema of the parts a notice uses) and refuses what breaks them, as the services do.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from backout.channels.base import Delivery, Receipt, Sender
from backout.channels.notice import Notice
from backout.channels.slack import Slack
from backout.channels.teams import Teams
from tests.http_server import QuietHandler, http_server

TOKEN = "xoxb-1111-2222-SeCrEtToKeN"
HOOK = "/services/T0TEAM/B0HOOK/hOoKsEcReT42"
TEAMS_HOOK = "/webhookb2/abc@def/IncomingWebhook/tEaMsSeCrEt77/xyz"

Answer = tuple[int, Any, dict[str, str]]  # status, JSON object or text, headers


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class StandIn:
    """What both stand-ins share: requests seen, problems found, answers scripted per path
    (each used once, before the normal answer)."""

    seen: list[Seen] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    script: dict[str, list[Answer]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> Answer:
        raise NotImplementedError

    def take(self, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        with self.lock:
            try:
                body = json.loads(raw)
            except ValueError:
                self.problems.append(f"{path}: the body is not JSON")
                return 400, "invalid_payload", {}
            if not headers.get("content-type", "").startswith("application/json"):
                self.problems.append(f"{path}: Content-Type {headers.get('content-type')!r}")
            self.seen.append(Seen(path, headers, body))
            scripted = self.script.get(path)
            if scripted:
                return scripted.pop(0)
            return self.answer(path, headers, body)

    def calls(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]


@contextmanager
def serving(stand_in: StandIn) -> Iterator[str]:
    class Handler(QuietHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            code, answer, extra = stand_in.take(self.path, headers, raw)
            is_json = not isinstance(answer, str)
            data = (json.dumps(answer) if is_json else answer).encode()
            kind = "application/json; charset=utf-8" if is_json else "text/plain; charset=utf-8"
            self.reply(code, data, extra, kind)

    with http_server(Handler) as url:
        yield url


# --- Slack -------------------------------------------------------------------------------

BLOCK_TYPES = {"header", "section", "context", "actions", "divider"}
# what may stand between < and > in mrkdwn: mentions, channel links, special mentions, links
SLACK_SYNTAX = re.compile(
    r"<(@[UW][A-Z0-9]+|!subteam\^S[A-Z0-9]+|!(here|channel|everyone)|#C[A-Z0-9]+"
    r"|https?://[^|>\s]+(\|[^>]*)?)>"
)


def units(text: str) -> int:
    """Characters as Slack's limits count them, at their most (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def check_text(where: str, obj: object, kinds: set[str], limit: int, problems: list[str]) -> None:
    if not isinstance(obj, dict) or obj.get("type") not in kinds:
        problems.append(f"{where}: not a text object of type {sorted(kinds)}: {obj!r}"[:300])
        return
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        problems.append(f"{where}: empty text")
        return
    if units(text) > limit:
        problems.append(f"{where}: {units(text)} characters, more than {limit}")
    if obj["type"] == "mrkdwn":
        bare = SLACK_SYNTAX.sub("", text)
        if "<" in bare or ">" in bare:
            problems.append(f"{where}: < or > not escaped")
        if re.search(r"&(?!amp;|lt;|gt;)", bare):
            problems.append(f"{where}: & not escaped, or an escape cut short")


def check_message(where: str, body: dict[str, Any]) -> list[str]:
    """Block Kit rules, as documented, for a message's ``text`` and ``blocks``."""
    problems: list[str] = []
    if not isinstance(body.get("text"), str) or not body["text"]:
        problems.append(f"{where}: no fallback text")
    blocks = body.get("blocks")
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= 50:
        return [*problems, f"{where}: blocks must be a list of 1 to 50 blocks"]
    for i, block in enumerate(blocks):
        at = f"{where} block {i}"
        kind = block.get("type")
        if kind not in BLOCK_TYPES:
            problems.append(f"{at}: block type {kind!r} not allowed")
        elif kind == "header":
            check_text(at, block.get("text"), {"plain_text"}, 150, problems)
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                problems.append(f"{at}: a section needs text or fields")
            if "text" in block:
                check_text(at, block["text"], {"plain_text", "mrkdwn"}, 3000, problems)
            if "fields" in block:
                fields = block["fields"]
                if not isinstance(fields, list) or not 1 <= len(fields) <= 10:
                    problems.append(f"{at}: fields must hold 1 to 10 items")
                else:
                    for j, item in enumerate(fields):
                        check_text(
                            f"{at} field {j}", item, {"plain_text", "mrkdwn"}, 2000, problems
                        )
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                problems.append(f"{at}: context must hold 1 to 10 elements")
            else:
                for j, item in enumerate(elements):
                    check_text(f"{at} element {j}", item, {"plain_text", "mrkdwn"}, 3000, problems)
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
                problems.append(f"{at}: actions must hold 1 to 25 elements")
                continue
            ids = [e.get("action_id") for e in elements if e.get("action_id") is not None]
            if len(ids) != len(set(ids)):
                problems.append(f"{at}: action_ids are not unique")
            for j, button in enumerate(elements):
                if button.get("type") != "button":
                    problems.append(f"{at} element {j}: not a button")
                check_text(f"{at} button {j}", button.get("text"), {"plain_text"}, 75, problems)
                url = button.get("url")
                if not isinstance(url, str) or not url or units(url) > 3000:
                    problems.append(f"{at} button {j}: no url (or longer than 3000)")
    return problems


class SlackStandIn(StandIn):
    """A stand-in for Slack: an incoming webhook at ``HOOK`` and the Web API methods
    ``chat.postMessage`` and ``chat.update`` under ``/api``, with a bot token, one channel
    (``#ops`` = ``C0OPS``), timestamps it issues, and Slack's answers: ``ok`` from the
    webhook, ``{"ok": false, "error": …}`` with HTTP 200 from the API."""

    CHANNELS = {"#ops": "C0OPS", "C0OPS": "C0OPS"}

    def __init__(self, leaky: bool = False) -> None:
        super().__init__()
        self.leaky = leaky  # answer errors that echo the secrets sent (a misbehaving proxy)
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}  # (channel, ts): latest
        self.replies: list[dict[str, Any]] = []
        self.issued = 0

    def answer(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> Answer:
        auth = headers.get("authorization", "")
        if self.leaky:
            if path.startswith("/api/"):
                return 200, {"ok": False, "error": f"invalid_auth ({auth})"}, {}
            return 500, f"rollup_error for {path}", {}
        if path == HOOK:
            problems = check_message("webhook", body)
            self.problems += problems
            return (400, "invalid_blocks", {}) if problems else (200, "ok", {})
        if path == "/api/chat.postMessage":
            return self.post_message(auth, body)
        if path == "/api/chat.update":
            return self.update(auth, body)
        return 404, "no_service", {}

    def _ts(self) -> str:
        self.issued += 1
        return f"1700000000.{self.issued:06d}"

    def post_message(self, auth: str, body: dict[str, Any]) -> Answer:
        if auth != f"Bearer {TOKEN}":
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        channel = self.CHANNELS.get(str(body.get("channel")))
        if channel is None:
            return 200, {"ok": False, "error": "channel_not_found"}, {}
        problems = check_message("chat.postMessage", body)
        thread = body.get("thread_ts")
        if thread is not None and (channel, thread) not in self.messages:
            problems.append(f"chat.postMessage: thread_ts {thread!r} was never issued")
        if "reply_broadcast" in body and thread is None:
            problems.append("chat.postMessage: reply_broadcast without thread_ts")
        if problems:
            self.problems += problems
            return 200, {"ok": False, "error": "invalid_blocks"}, {}
        ts = self._ts()
        if thread is None:
            self.messages[(channel, ts)] = body
        else:
            self.replies.append(body)
        return (
            200,
            {"ok": True, "channel": channel, "ts": ts, "message": {"text": body["text"]}},
            {},
        )

    def update(self, auth: str, body: dict[str, Any]) -> Answer:
        if auth != f"Bearer {TOKEN}":
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        channel, ts = str(body.get("channel")), str(body.get("ts"))
        if channel not in self.CHANNELS.values():  # chat.update takes an id, never a name
            self.problems.append(f"chat.update: channel {channel!r} is not a channel id")
            return 200, {"ok": False, "error": "channel_not_found"}, {}
        if (channel, ts) not in self.messages:
            self.problems.append(f"chat.update: no message {ts!r} in {channel}")
            return 200, {"ok": False, "error": "message_not_found"}, {}
        problems = check_message("chat.update", body)
        if problems:
            self.problems += problems
            return 200, {"ok": False, "error": "invalid_blocks"}, {}
        self.messages[(channel, ts)] = body
        return 200, {"ok": True, "channel": channel, "ts": ts, "text": body["text"]}, {}


def a_notice(**changes: Any) -> Notice:
    values: dict[str, Any] = {
        "event": "trigger.fired",
        "title": "web@prod: error rate 7.2% > 5% — backing out",
        "text": "The canary's 5xx ratio crossed its limit; <rollback> & cleanup started.",
        "severity": "error",
        "run_id": "abc",
        "service": "web",
        "environment": "prod",
        "plan": "web-release",
        "explain": "backout explain abc",
        "fields": [("Service", "web"), ("Environment", "prod"), ("Trigger", "error_rate > 5%")],
        "links": {"Dashboard": "https://grafana.example.com/d/web", "Run": "https://ci/run/9"},
        "mentions": ["U0ALICE", "S0ONCALL", "@here", "bob"],
    }
    values.update(changes)
    return Notice(**values)


def a_delivery(notice: Notice, ref: str | None = None, seq: int = 3) -> Delivery:
    return Delivery(
        id=seq,
        key=f"backout-notify-ops-run-abc-{seq}",
        route="notify:ops",
        stream="run:abc",
        event=notice.event,
        payload={"notice": notice.to_json()},
        ref=ref,
    )


def texts(body: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [b for b in body["blocks"] if b["type"] == kind]


def slack_webhook(url: str) -> Sender:
    return Slack().open(Slack.Options(webhook_url=url + HOOK, timeout=5))


def slack_api(url: str) -> Sender:
    return Slack().open(Slack.Options(token=TOKEN, channel="#ops", api_url=url + "/api", timeout=5))


def test_a_webhook_message_is_valid_block_kit_with_the_whole_notice() -> None:
    slack = SlackStandIn()
    mentions = ["U0ALICE", "S0ONCALL", "@here", "bob", "<@W0CAROL>", "<b>"]
    with serving(slack) as url, slack_webhook(url) as sender:
        receipt = sender.deliver(a_delivery(a_notice(mentions=mentions)))
    assert receipt == Receipt(True)
    assert slack.problems == []
    [seen] = slack.calls(HOOK)
    assert seen.headers["idempotency-key"] == "backout-notify-ops-run-abc-3"
    assert "authorization" not in seen.headers
    body = seen.body
    assert body["text"].startswith("web@prod: error rate 7.2% &gt; 5%")
    [header] = texts(body, "header")
    assert header["text"]["text"] == ":red_circle: web@prod: error rate 7.2% > 5% — backing out"
    text, facts = texts(body, "section")
    assert "&lt;rollback&gt; &amp; cleanup started." in text["text"]["text"]
    cc = "<@U0ALICE> <!subteam^S0ONCALL> <!here> @bob <@W0CAROL> @&lt;b&gt;"
    assert text["text"]["text"].endswith("\n\n" + cc)
    assert [f["text"] for f in facts["fields"]] == [
        "*Service*\nweb",
        "*Environment*\nprod",
        "*Trigger*\nerror_rate &gt; 5%",
    ]
    [context] = texts(body, "context")
    shown = " ".join(e["text"] for e in context["elements"])
    assert "`backout explain abc`" in shown
    assert "run `abc`" in shown
    [actions] = texts(body, "actions")
    assert [(b["text"]["text"], b["url"]) for b in actions["elements"]] == [
        ("Dashboard", "https://grafana.example.com/d/web"),
        ("Run", "https://ci/run/9"),
    ]


def test_without_links_fields_or_text_the_message_keeps_only_what_it_has() -> None:
    slack = SlackStandIn()
    bare = a_notice(text="", fields=[], links={}, mentions=[], event="run.backed_out")
    with serving(slack) as url, slack_webhook(url) as sender:
        assert sender.deliver(a_delivery(bare)).ok
    assert slack.problems == []
    [seen] = slack.calls(HOOK)
    assert [b["type"] for b in seen.body["blocks"]] == ["header", "context"]
    assert seen.body["blocks"][0]["text"]["text"].startswith(":large_green_circle: ")


def test_with_a_token_the_first_message_is_the_header_later_ones_reply_and_update_it() -> None:
    slack = SlackStandIn()
    first = a_notice()
    later = a_notice(event="run.backed_out", title="web@prod backed out", severity="info")
    waiting = a_notice(event="approval.waiting", title="web@prod waits for an approval")
    with serving(slack) as url, slack_api(url) as sender:
        opened = sender.deliver(a_delivery(first, seq=1))
        assert opened.ok, opened.error
        assert opened.ref == "C0OPS:1700000000.000001"
        replied = sender.deliver(a_delivery(later, ref=opened.ref, seq=2))
        broadcast = sender.deliver(a_delivery(waiting, ref=opened.ref, seq=3))
    assert slack.problems == []
    assert (replied.ok, replied.ref, replied.warning) == (True, None, "")
    assert broadcast.ok
    assert broadcast.ref is None
    posts = slack.calls("/api/chat.postMessage")
    updates = slack.calls("/api/chat.update")
    assert all(s.headers["authorization"] == f"Bearer {TOKEN}" for s in slack.seen)
    assert posts[0].body["channel"] == "#ops"
    assert "thread_ts" not in posts[0].body
    assert posts[0].headers["idempotency-key"] == "backout-notify-ops-run-abc-1"
    # each later notice: the header is updated (by channel id and the first ts), then a reply
    assert [(u.body["channel"], u.body["ts"]) for u in updates] == [
        ("C0OPS", "1700000000.000001"),
        ("C0OPS", "1700000000.000001"),
    ]
    assert [p.body["thread_ts"] for p in posts[1:]] == ["1700000000.000001"] * 2
    assert [p.body.get("reply_broadcast") for p in posts[1:]] == [None, True]
    header = slack.messages[("C0OPS", "1700000000.000001")]
    assert header["blocks"][0]["text"]["text"].endswith("web@prod waits for an approval")
    assert [r["text"] for r in slack.replies] == [
        "web@prod backed out (web@prod)",
        "web@prod waits for an approval (web@prod)",
    ]


def test_a_header_that_cannot_be_updated_does_not_stop_the_reply() -> None:
    """Slack refuses the update for good (edit window closed): the reply still goes out and
    the receipt says what was not done."""
    slack = SlackStandIn()
    with serving(slack) as url, slack_api(url) as sender:
        opened = sender.deliver(a_delivery(a_notice(), seq=1))
        slack.script["/api/chat.update"] = [(200, {"ok": False, "error": "edit_window_closed"}, {})]
        receipt = sender.deliver(a_delivery(a_notice(title="later"), ref=opened.ref, seq=2))
    assert receipt.ok
    assert receipt.ref is None
    assert "edit_window_closed" in receipt.warning
    assert len(slack.replies) == 1


def test_a_header_update_that_may_work_later_is_retried_before_any_reply() -> None:
    """Rate limited on the update: nothing is posted, so the retry cannot post twice."""
    slack = SlackStandIn()
    with serving(slack) as url, slack_api(url) as sender:
        opened = sender.deliver(a_delivery(a_notice(), seq=1))
        slack.script["/api/chat.update"] = [
            (429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "3"})
        ]
        receipt = sender.deliver(a_delivery(a_notice(title="later"), ref=opened.ref, seq=2))
        assert not receipt.ok
        assert receipt.retry_after == 3
        assert slack.replies == []
        again = sender.deliver(a_delivery(a_notice(title="later"), ref=opened.ref, seq=2))
    assert again.ok
    assert len(slack.replies) == 1


def test_ok_false_from_the_web_api_is_a_failure_with_slacks_error() -> None:
    slack = SlackStandIn()
    with serving(slack) as url:
        options = Slack.Options(token=TOKEN, channel="#nowhere", api_url=url + "/api")
        with Slack().open(options) as sender:
            receipt = sender.deliver(a_delivery(a_notice()))
    assert not receipt.ok
    assert "channel_not_found" in receipt.error
    assert receipt.permanent  # the same request would meet it again
    assert receipt.ref is None


def test_a_webhook_for_a_channel_that_is_gone_is_a_permanent_failure() -> None:
    slack = SlackStandIn()
    slack.script[HOOK] = [(404, "channel_not_found", {}), (500, "rollup_error", {})]
    with serving(slack) as url, slack_webhook(url) as sender:
        gone = sender.deliver(a_delivery(a_notice()))
        broken = sender.deliver(a_delivery(a_notice()))
    assert not gone.ok
    assert gone.error == "HTTP 404: channel_not_found"
    assert gone.permanent
    assert not broken.ok
    assert not broken.permanent  # Slack's own trouble: retried


@pytest.mark.parametrize("mode", ["webhook", "token"])
def test_429_with_retry_after_is_kept(mode: str) -> None:
    slack = SlackStandIn()
    path = HOOK if mode == "webhook" else "/api/chat.postMessage"
    answer: Any = "rate_limited" if mode == "webhook" else {"ok": False, "error": "ratelimited"}
    slack.script[path] = [(429, answer, {"Retry-After": "7"})]
    with serving(slack) as url, (slack_webhook if mode == "webhook" else slack_api)(url) as sender:
        receipt = sender.deliver(a_delivery(a_notice()))
        assert not receipt.ok
        assert receipt.retry_after == 7
        assert not receipt.permanent
        assert "429" in receipt.error
        assert sender.deliver(a_delivery(a_notice())).ok  # and then it goes through


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("mode", ["webhook", "token"])
def test_a_transport_error_is_a_failed_receipt_not_an_exception(mode: str) -> None:
    url = closed_port_url()
    with (slack_webhook if mode == "webhook" else slack_api)(url) as sender:
        receipt = sender.deliver(a_delivery(a_notice()))
    assert not receipt.ok
    assert "ConnectError" in receipt.error
    assert not receipt.permanent
    assert TOKEN not in receipt.error
    assert "hOoKsEcReT42" not in receipt.error


@pytest.mark.parametrize("mode", ["webhook", "token"])
def test_secrets_never_appear_in_a_receipt(mode: str) -> None:
    """Even when the answer echoes them (the hook's path, the Authorization header)."""
    slack = SlackStandIn(leaky=True)
    with serving(slack) as url, (slack_webhook if mode == "webhook" else slack_api)(url) as sender:
        first = sender.deliver(a_delivery(a_notice()))
        later = sender.deliver(a_delivery(a_notice(), ref="C0OPS:1700000000.000001"))
    raw = [s.headers.get("authorization", "") + s.path for s in slack.seen]
    assert any(TOKEN in r or "hOoKsEcReT42" in r for r in raw)  # the secrets were sent
    for receipt in (first, later):
        assert not receipt.ok
        assert "***" in receipt.error
        for text in (receipt.error, receipt.warning):
            assert TOKEN not in text
            assert "SeCrEtToKeN" not in text
            assert "hOoKsEcReT42" not in text


def test_long_texts_are_cut_to_slacks_limits() -> None:
    slack = SlackStandIn()
    notice = a_notice(
        title="😀" * 100,  # 113 characters with the emoji prefix, 213 UTF-16 code units
        text="& " * 2000,  # 4000 characters, 8000 once escaped
        fields=[(f"label {i}", "v&" * 1500) for i in range(15)],
        links={
            "L" * 200: "https://example.com/" + "p" * 100,
            "too long": "https://x/" + "y" * 3000,
        },
        mentions=[f"U{i:08d}" for i in range(50)],
    )
    with serving(slack) as url, slack_webhook(url) as sender:
        receipt = sender.deliver(a_delivery(notice))
    assert receipt.ok, receipt.error
    assert slack.problems == []
    [seen] = slack.calls(HOOK)
    [header] = texts(seen.body, "header")
    assert header["text"]["text"].endswith("…")
    assert units(header["text"]["text"]) <= 150
    text, facts = texts(seen.body, "section")
    assert 2900 < units(text["text"]["text"]) <= 3000
    assert "…" in text["text"]["text"]
    assert "<@U00000000>" in text["text"]["text"]
    assert len(facts["fields"]) == 10
    assert facts["fields"][-1]["text"].endswith("6 more: see the explain command")
    assert all(units(f["text"]) <= 2000 for f in facts["fields"])
    [actions] = texts(seen.body, "actions")
    assert len(actions["elements"]) == 1  # the link too long for a button is left out
    assert units(actions["elements"][0]["text"]["text"]) == 75


def test_a_delivery_without_a_notice_is_a_failed_receipt() -> None:
    slack = SlackStandIn()
    broken = Delivery(1, "k", "notify:ops", "run:abc", "trigger.fired", {"other": 1})
    with serving(slack) as url, slack_webhook(url) as sender:
        receipt = sender.deliver(broken)
    assert not receipt.ok
    assert "no valid notice" in receipt.error
    assert receipt.permanent
    assert slack.seen == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"webhook_url": "https://hooks.slack.com/x", "token": TOKEN}, "not both"),
        ({}, "give either webhook_url"),
        ({"channel": "#ops"}, "give either webhook_url"),
        ({"token": TOKEN}, "a token needs a channel"),
        ({"token": TOKEN, "channel": " "}, "a token needs a channel"),
        ({"webhook_url": "https://hooks.slack.com/x", "channel": "#ops"}, "channel goes with"),
        ({"webhook_url": "hooks.slack.com/x"}, "not an http(s) URL"),
        ({"token": TOKEN, "channel": "#ops", "api_url": "slack.com/api"}, "not an http(s) URL"),
        ({"webhook_url": "https://hooks.slack.com/x", "colour": "red"}, "Extra inputs"),
    ],
)
def test_slack_options_take_one_way_in(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as bad:
        Slack.Options.model_validate(options)
    assert message in str(bad.value)
    assert TOKEN not in str(bad.value)  # inputs (secrets) are not repeated in errors


def test_slack_options_describe_every_field_and_hide_the_secrets() -> None:
    assert all(f.description for f in Slack.Options.model_fields.values())
    options = Slack.Options(token=TOKEN, channel="#ops")
    assert TOKEN not in repr(options)
    assert Slack.kind == "slack"
    assert Slack.notices


# --- Teams -------------------------------------------------------------------------------


def one_of(*values: str) -> dict[str, str]:
    return {"type": "string", "pattern": f"(?i)^({'|'.join(values)})$"}


TEXT_BLOCK = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {
        "type": {"const": "TextBlock"},
        "text": {"type": "string", "minLength": 1},
        "color": one_of("default", "dark", "light", "accent", "good", "warning", "attention"),
        "weight": one_of("default", "lighter", "bolder"),
        "size": one_of("default", "small", "medium", "large", "extraLarge"),
        "wrap": {"type": "boolean"},
        "isSubtle": {"type": "boolean"},
    },
    "additionalProperties": False,
}
FACT_SET = {
    "type": "object",
    "required": ["type", "facts"],
    "properties": {
        "type": {"const": "FactSet"},
        "facts": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["title", "value"],
                "properties": {"title": {"type": "string"}, "value": {"type": "string"}},
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}
OPEN_URL = {
    "type": "object",
    "required": ["type", "url"],
    "properties": {
        "type": {"const": "Action.OpenUrl"},
        "url": {"type": "string", "pattern": "^https?://"},
        "title": {"type": "string"},
    },
    "additionalProperties": False,
}
MENTION = {
    "type": "object",
    "required": ["type", "text", "mentioned"],
    "properties": {
        "type": {"const": "mention"},
        "text": {"type": "string", "pattern": "^<at>.+</at>$"},
        "mentioned": {
            "type": "object",
            "required": ["id", "name"],
            "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
        },
    },
}
CARD = {
    "type": "object",
    "required": ["type", "version", "body"],
    "properties": {
        "$schema": {"const": "http://adaptivecards.io/schemas/adaptive-card.json"},
        "type": {"const": "AdaptiveCard"},
        "version": {"enum": ["1.0", "1.1", "1.2", "1.3", "1.4", "1.5"]},
        "body": {"type": "array", "minItems": 1, "items": {"oneOf": [TEXT_BLOCK, FACT_SET]}},
        "actions": {"type": "array", "items": OPEN_URL},
        "msteams": {
            "type": "object",
            "properties": {
                "width": {"const": "Full"},
                "entities": {"type": "array", "items": MENTION},
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}
TEAMS_MESSAGE = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["type", "attachments"],
    "properties": {
        "type": {"const": "message"},
        "attachments": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["contentType", "content"],
                "properties": {
                    "contentType": {"const": "application/vnd.microsoft.card.adaptive"},
                    "contentUrl": {"type": ["string", "null"]},
                    "content": CARD,
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}
TEAMS_VALIDATOR = Draft202012Validator(TEAMS_MESSAGE)


class TeamsStandIn(StandIn):
    """A stand-in for a Teams incoming webhook at ``TEAMS_HOOK``: it validates the message
    against ``TEAMS_MESSAGE`` (and that each mention entity's ``<at>`` tag is in the card's
    text), answers ``1`` when it takes it and 400 when it does not."""

    def answer(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> Answer:
        if path != TEAMS_HOOK:
            return 404, "Not Found", {}
        problems = [
            f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
            for e in TEAMS_VALIDATOR.iter_errors(body)
        ]
        if not problems:
            for attachment in body["attachments"]:
                card = attachment["content"]
                shown = " ".join(b.get("text", "") for b in card["body"])
                for entity in card.get("msteams", {}).get("entities", []):
                    if entity["text"] not in shown:
                        problems.append(f"mention {entity['text']} is not in the card's text")
        self.problems += problems
        return (400, "Bad payload", {}) if problems else (200, "1", {})


def teams(url: str) -> Sender:
    return Teams().open(Teams.Options(webhook_url=url + TEAMS_HOOK, timeout=5))


def the_card(stand_in: TeamsStandIn) -> dict[str, Any]:
    [seen] = stand_in.seen
    [attachment] = seen.body["attachments"]
    card: dict[str, Any] = attachment["content"]
    return card


def test_a_teams_message_is_a_valid_adaptive_card_with_the_whole_notice() -> None:
    stand_in = TeamsStandIn()
    notice = a_notice(mentions=["alice@example.com", "U0ALICE"])
    with serving(stand_in) as url, teams(url) as sender:
        receipt = sender.deliver(a_delivery(notice))
    assert receipt == Receipt(True)
    assert stand_in.problems == []
    assert stand_in.seen[0].headers["idempotency-key"] == "backout-notify-ops-run-abc-3"
    card = the_card(stand_in)
    assert card["version"] == "1.4"
    title, text, cc, facts, footer = card["body"]
    assert (title["text"], title["weight"], title["size"]) == (notice.title, "Bolder", "Medium")
    assert text["text"] == notice.text
    assert text["wrap"] is True
    assert cc["text"] == "cc <at>alice@example.com</at> U0ALICE"
    assert card["msteams"]["entities"][0]["mentioned"]["id"] == "alice@example.com"
    assert facts["facts"] == [
        {"title": "Service", "value": "web"},
        {"title": "Environment", "value": "prod"},
        {"title": "Trigger", "value": "error_rate > 5%"},
    ]
    assert "backout explain abc" in footer["text"]
    assert footer["isSubtle"] is True
    assert card["actions"] == [
        {
            "type": "Action.OpenUrl",
            "title": "Dashboard",
            "url": "https://grafana.example.com/d/web",
        },
        {"type": "Action.OpenUrl", "title": "Run", "url": "https://ci/run/9"},
    ]


@pytest.mark.parametrize(
    ("severity", "event", "colour"),
    [
        ("critical", "run.failed", "Attention"),
        ("error", "trigger.fired", "Attention"),
        ("warning", "trigger.fired", "Warning"),
        ("info", "run.started", "Default"),
        ("error", "run.backed_out", "Good"),  # the incident is over
        ("info", "run.promoted", "Good"),
    ],
)
def test_the_teams_title_is_coloured_by_severity(severity: str, event: str, colour: str) -> None:
    stand_in = TeamsStandIn()
    notice = a_notice(severity=severity, event=event, fields=[], links={}, mentions=[])
    with serving(stand_in) as url, teams(url) as sender:
        assert sender.deliver(a_delivery(notice)).ok
    assert stand_in.problems == []
    card = the_card(stand_in)
    assert card["body"][0]["color"] == colour
    assert "actions" not in card
    assert [b["type"] for b in card["body"]] == ["TextBlock", "TextBlock", "TextBlock"]


def test_a_teams_error_is_a_failed_receipt_without_the_webhook() -> None:
    stand_in = TeamsStandIn()
    stand_in.script[TEAMS_HOOK] = [
        (500, f"Webhook {TEAMS_HOOK} failed", {}),
        (400, "Bad payload", {}),
        (429, "Too Many Requests", {"Retry-After": "12"}),
        (200, "Microsoft Teams endpoint returned HTTP error 429 with ContextId ...", {}),
    ]
    with serving(stand_in) as url, teams(url) as sender:
        failed = sender.deliver(a_delivery(a_notice()))
        refused = sender.deliver(a_delivery(a_notice()))
        throttled = sender.deliver(a_delivery(a_notice()))
        connector = sender.deliver(a_delivery(a_notice()))
        fine = sender.deliver(a_delivery(a_notice()))
    assert not failed.ok
    assert failed.error.startswith("HTTP 500")
    assert not failed.permanent
    assert not refused.ok
    assert refused.permanent
    assert "tEaMsSeCrEt77" not in failed.error
    assert "***" in failed.error
    assert not throttled.ok
    assert throttled.retry_after == 12
    assert not connector.ok
    assert "HTTP error 429" in connector.error
    assert fine.ok
    assert stand_in.problems == []


def test_a_teams_transport_error_is_a_failed_receipt() -> None:
    with teams(closed_port_url()) as sender:
        receipt = sender.deliver(a_delivery(a_notice()))
    assert not receipt.ok
    assert "ConnectError" in receipt.error
    assert "tEaMsSeCrEt77" not in receipt.error


def test_long_teams_texts_are_cut() -> None:
    stand_in = TeamsStandIn()
    notice = a_notice(
        title="T" * 1000,
        text="é" * 50_000,  # two bytes each in UTF-8
        fields=[("f", "v" * 5000)] * 40,
        mentions=[f"user{i}@example.com" for i in range(300)],
    )
    with serving(stand_in) as url, teams(url) as sender:
        assert sender.deliver(a_delivery(notice)).ok
    assert stand_in.problems == []  # every mention entity kept is named in the text
    [seen] = stand_in.seen
    sent = json.dumps(seen.body, ensure_ascii=False).encode()
    assert len(sent) < 28_000  # a Teams message is at most about 28 KB
    card = the_card(stand_in)
    title, text, cc = card["body"][:3]
    assert title["text"].endswith("…")
    assert text["text"].endswith("…")
    assert cc["text"].startswith("cc <at>user0@example.com</at>")
    assert len(card["msteams"]["entities"]) == cc["text"].count("<at>") < 300


def test_teams_options() -> None:
    with pytest.raises(ValidationError) as missing:
        Teams.Options.model_validate({})
    assert "webhook_url" in str(missing.value)
    with pytest.raises(ValidationError) as bad:
        Teams.Options.model_validate({"webhook_url": "outlook.office.com/webhookb2/SeCrEt"})
    assert "not an http(s) URL" in str(bad.value)
    assert "SeCrEt" not in str(bad.value)
    options = Teams.Options(webhook_url="https://x.webhook.office.com/webhookb2/SeCrEt")
    assert "SeCrEt" not in repr(options)
    assert all(f.description for f in Teams.Options.model_fields.values())
    assert Teams.kind == "teams"
    assert Teams.notices
