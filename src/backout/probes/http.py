"""HTTP probes: ``http`` check (status, body text, JSON field) and ``http`` baseline source."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from backout.errors import ActionError
from backout.kernel.options import Context, Options
from backout.probes.base import Check, Source, Verdict

if TYPE_CHECKING:
    import httpx


class HttpCheckOptions(Options):
    url: str = Field(description="URL to request.")
    method: str = Field("GET", description="HTTP method.")
    headers: dict[str, str] = Field(default_factory=dict)
    status: int = Field(200, ge=100, le=599, description="Expected status code.")
    contains: str | None = Field(None, description="Text the body must contain.")
    json_field: str | None = Field(None, alias="json", description="Dotted path into a JSON body.")
    equals: Any = Field(None, description="Value the JSON field must equal (compared as text).")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value


def json_path(document: Any, path: str) -> Any:
    """Follow ``a.b.0.c`` through dicts and lists; KeyError when missing."""
    node = document
    for part in path.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(path)
    return node


def as_text(value: Any) -> str:
    """A JSON value as plan text: strings as they are, the rest as JSON (``true``, not
    Python's ``True``), so ``equals: "false"`` and a baseline of ``false`` both match."""
    return value if isinstance(value, str) else json.dumps(value)


def fetch(
    method: str, url: str, headers: dict[str, str], timeout: float, **kwargs: Any
) -> httpx.Response:
    import httpx  # here, not at the top: plans are validated without it

    try:
        return httpx.request(method, url, headers=headers, timeout=timeout, **kwargs)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise ActionError(
            f"{method} {url}: {type(exc).__name__}: {exc}",
            hint="check the URL and that the service listens there",
        ) from exc


class HttpCheck(Check):
    kind = "http"
    Options = HttpCheckOptions

    def check(self, options: HttpCheckOptions, ctx: Context) -> Verdict:
        try:
            response = fetch(options.method, options.url, options.headers, ctx.timeout)
        except ActionError as exc:
            return Verdict(False, ctx.redact(exc.message))
        if response.status_code != options.status:
            return Verdict(
                False,
                f"status {response.status_code}, expected {options.status}",
                response.status_code,
            )
        if options.contains is not None and options.contains not in response.text:
            return Verdict(False, f"body does not contain {options.contains!r}")
        if options.json_field:
            return _json_verdict(response, options)
        return Verdict(True, f"status {response.status_code}", response.status_code)

    def describe(self, options: HttpCheckOptions) -> str:
        text = f"{options.method} {options.url} returns {options.status}"
        if options.contains:
            text += f" and contains {options.contains!r}"
        if options.json_field:
            text += f" with {options.json_field} = {options.equals!r}"
        return text


def _json_verdict(response: httpx.Response, options: HttpCheckOptions) -> Verdict:
    try:
        value = json_path(response.json(), options.json_field or "")
    except (ValueError, KeyError):
        return Verdict(False, f"JSON field {options.json_field} not found in the body")
    if options.equals is not None and as_text(value) != as_text(options.equals):
        return Verdict(
            False, f"{options.json_field} is {value!r}, expected {options.equals!r}", value
        )
    return Verdict(True, f"{options.json_field} = {value!r}", value)


class HttpSourceOptions(Options):
    url: str = Field(description="URL to read.")
    headers: dict[str, str] = Field(default_factory=dict)
    json_field: str | None = Field(None, alias="json", description="Dotted path into a JSON body.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value


class HttpSource(Source):
    kind = "http"
    Options = HttpSourceOptions

    def read(self, options: HttpSourceOptions, ctx: Context) -> str:
        response = fetch("GET", options.url, options.headers, ctx.timeout)
        if response.status_code >= 400:
            raise ActionError(f"GET {options.url}: status {response.status_code}")
        if not options.json_field:
            return response.text.strip()
        try:
            return as_text(json_path(response.json(), options.json_field))
        except (ValueError, KeyError) as exc:
            raise ActionError(f"GET {options.url}: no JSON field {options.json_field}") from exc

    def describe(self, options: HttpSourceOptions) -> str:
        field = f" field {options.json_field}" if options.json_field else ""
        return f"GET {options.url}{field}"
