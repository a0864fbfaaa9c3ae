"""``email``: a notice as an email, over SMTP (the standard library's ``smtplib``).

Each delivery is one message, sent on a connection of its own (SMTP servers drop idle
connections; deliveries can be minutes apart): ``multipart/alternative`` with a plain
text part and an HTML part (every value HTML-escaped), Subject ``{subject_prefix}
{title}``.

Threading: every message's ``Message-ID`` is ``<{delivery key}@backout>``, the same on a
retry, so a mail system that sees it twice can tell. The first message of a run's stream
has no parent and returns its own Message-ID as the receipt's ``ref``; the outbox hands
that ``ref`` to the run's later deliveries, which name it in ``In-Reply-To`` and
``References``, so a mail client shows one thread per run.

Transport: SMTPS when ``ssl`` (implicit TLS, usually port 465; ``starttls`` is then
ignored), else plain SMTP upgraded with STARTTLS when ``starttls`` (port 587; the server
must offer it), else plain SMTP (only to a relay on a trusted network). Certificates
are verified against the system's trust store (``SSL_CERT_FILE`` names another).
``username``/``password`` log in (AUTH) after the TLS upgrade.

Any SMTP error, a refused connection or a timeout is a receipt that is not ok (4xx
temporary codes included): the outbox retries it. The password never appears in one.
"""

from __future__ import annotations

import html
import re
import time
from email.message import EmailMessage
from email.utils import formatdate
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from backout.channels.base import Channel, Delivery, Receipt, Sender
from backout.channels.notice import Notice

if TYPE_CHECKING:
    import smtplib

DOMAIN = "backout"
_NOT_ATEXT = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")


def message_id(key: str) -> str:
    """The Message-ID of the delivery keyed ``key``: ``<key@backout>``, the key with
    anything an RFC 5322 id may not hold replaced by ``-``."""
    return f"<{_NOT_ATEXT.sub('-', key)}@{DOMAIN}>"


class EmailOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built when first used

    host: str = Field(min_length=1, description="The SMTP server, e.g. smtp.example.com")
    port: int = Field(587, ge=1, le=65535, description="SMTP port (587 STARTTLS, 465 SMTPS)")
    starttls: bool = Field(True, description="Upgrade the connection with STARTTLS")
    ssl: bool = Field(False, description="Connect with implicit TLS (SMTPS); starttls ignored")
    username: str | None = Field(None, description="SMTP AUTH user name")
    password: str | None = Field(
        None, repr=False, description="SMTP AUTH password (keep it in the environment)"
    )
    sender: str = Field(description="The From address, e.g. backout@example.com")
    to: list[str] = Field(min_length=1, description="Recipient addresses")
    timeout: float = Field(10.0, gt=0, description="Seconds per SMTP operation")
    subject_prefix: str = Field("[backout]", description="Put before each subject")

    @field_validator("sender")
    @classmethod
    def _address(cls, address: str) -> str:
        if "@" not in address:
            raise ValueError(f"{address!r} is not an email address")
        return address

    @field_validator("to")
    @classmethod
    def _addresses(cls, addresses: list[str]) -> list[str]:
        for address in addresses:
            cls._address(address)
        return addresses

    @model_validator(mode="after")
    def _login_pair(self) -> EmailOptions:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _is_web(url: str) -> bool:
    return url.startswith(("https://", "http://"))


def plain(notice: Notice) -> str:
    lines = [notice.title, ""]
    if notice.text:
        lines += [notice.text, ""]
    lines += [f"{label}: {value}" for label, value in notice.fields]
    lines += [f"Reason: {notice.reason}"] if notice.reason else []
    if notice.links:
        lines += ["", *(f"{label}: {url}" for label, url in notice.links.items())]
    if notice.explain:
        lines += ["", f"The whole story: {notice.explain}"]
    lines += ["", f"-- backout, run {notice.run_id} of {notice.subject} ({notice.severity})"]
    return "\n".join(lines) + "\n"


def rich(notice: Notice) -> str:
    """The HTML part: every value passes through ``html.escape``; only http(s) links
    become anchors."""
    e = html.escape
    parts = [f"<h2>{e(notice.title)}</h2>"]
    if notice.text:
        parts.append("<p>" + "<br>".join(e(line) for line in notice.text.splitlines()) + "</p>")
    rows = list(notice.fields) + ([("Reason", notice.reason)] if notice.reason else [])
    if rows:
        cells = "".join(f"<tr><th align='left'>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
        parts.append(f"<table>{cells}</table>")
    if notice.links:
        items = "".join(
            f'<li><a href="{e(url)}">{e(label)}</a></li>'
            if _is_web(url)
            else f"<li>{e(label)}: {e(url)}</li>"
            for label, url in notice.links.items()
        )
        parts.append(f"<ul>{items}</ul>")
    if notice.explain:
        parts.append(f"<p>The whole story: <code>{e(notice.explain)}</code></p>")
    footer = f"backout, run {notice.run_id} of {notice.subject} ({notice.severity})"
    parts.append(f"<p><small>{e(footer)}</small></p>")
    return "<!DOCTYPE html>\n<html><body>\n" + "\n".join(parts) + "\n</body></html>\n"


def compose(options: EmailOptions, delivery: Delivery, notice: Notice) -> EmailMessage:
    """The message for ``delivery``: a reply to ``delivery.ref`` (the Message-ID of the
    stream's first message) when there is one."""
    message = EmailMessage()
    title = _one_line(notice.title) or f"{notice.event} on {notice.subject}"
    if notice.test:
        title = f"[test] {title}"
    message["Subject"] = f"{options.subject_prefix} {title}".strip()
    message["From"] = options.sender
    message["To"] = ", ".join(options.to)
    message["Date"] = formatdate(notice.at if notice.at > 0 else time.time(), usegmt=True)
    message["Message-ID"] = message_id(delivery.key)
    if delivery.ref:
        message["In-Reply-To"] = delivery.ref
        message["References"] = delivery.ref
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    message["X-Backout-Run"] = notice.run_id
    message["X-Backout-Event"] = notice.event
    message.set_content(plain(notice))
    message.add_alternative(rich(notice), subtype="html")
    return message


class EmailSender(Sender):
    def __init__(self, options: EmailOptions) -> None:
        self.options = options

    def _redact(self, text: str) -> str:
        password = self.options.password
        return text.replace(password, "[password]") if password else text

    def _connect(self) -> smtplib.SMTP:
        import smtplib
        import ssl

        o = self.options
        if o.ssl:
            context = ssl.create_default_context()
            return smtplib.SMTP_SSL(o.host, o.port, timeout=o.timeout, context=context)
        smtp = smtplib.SMTP(o.host, o.port, timeout=o.timeout)
        try:
            if o.starttls:
                smtp.starttls(context=ssl.create_default_context())
        except BaseException:
            smtp.close()
            raise
        return smtp

    def deliver(self, delivery: Delivery) -> Receipt:
        import smtplib

        notice = Notice.of(delivery)
        message = compose(self.options, delivery, notice)
        own_id = message["Message-ID"]
        try:
            refused = self._send(message)
        except smtplib.SMTPAuthenticationError as exc:
            reason = _reply(exc.smtp_code, exc.smtp_error)
            error = f"SMTP login as {self.options.username!r} refused ({reason})"
            return Receipt(False, self._redact(error))
        except smtplib.SMTPNotSupportedError as exc:
            return Receipt(False, self._redact(f"SMTP: {exc}"))
        except smtplib.SMTPRecipientsRefused as exc:
            refusals = "; ".join(
                f"{rcpt}: {_reply(code, text)}" for rcpt, (code, text) in exc.recipients.items()
            )
            return Receipt(False, self._redact(f"SMTP refused every recipient: {refusals}"))
        except smtplib.SMTPResponseException as exc:
            temporary = 400 <= exc.smtp_code < 500
            kind = "temporary" if temporary else "permanent"
            error = f"SMTP {kind} error {_reply(exc.smtp_code, exc.smtp_error)}"
            return Receipt(False, self._redact(error), permanent=not temporary)
        except (smtplib.SMTPException, OSError) as exc:  # refused, timed out, TLS failed
            return Receipt(False, self._redact(f"{type(exc).__name__}: {exc}"))
        ref = delivery.ref or own_id
        if refused:
            refusals = "; ".join(
                f"{rcpt}: {_reply(code, text)}" for rcpt, (code, text) in refused.items()
            )
            return Receipt(True, ref=ref, warning=self._redact(f"SMTP refused {refusals}"))
        return Receipt(True, ref=ref)

    def _send(self, message: EmailMessage) -> dict[str, tuple[int, bytes]]:
        o = self.options
        with self._connect() as smtp:
            if o.username is not None and o.password is not None:
                smtp.login(o.username, o.password)
            return smtp.send_message(message, from_addr=o.sender, to_addrs=o.to)


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {_one_line(text)}"


class Email(Channel):
    kind = "email"
    notices = True
    Options = EmailOptions

    def open(self, options: EmailOptions) -> EmailSender:
        return EmailSender(options)
