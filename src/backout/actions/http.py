"""``http:`` — one HTTP request with an expected status (e.g. a deploy API or a flag toggle)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from backout.actions.base import Action, Outcome
from backout.errors import ActionError
from backout.kernel.options import Context, Options
from backout.probes.http import fetch
from backout.proc import tail


class HttpOptions(Options):
    url: str = Field(description="URL to call.")
    method: str = Field("POST", description="HTTP method.")
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = Field(None, description="Raw request body.")
    json_body: Any = Field(None, alias="json", description="JSON request body.")
    status: list[int] = Field(
        default_factory=lambda: list(range(200, 300)),
        description="Status code(s) that mean success: one number or a list (default 2xx).",
    )

    @field_validator("status", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) else value


class HttpAction(Action):
    kind = "http"
    Options = HttpOptions

    def execute(self, options: HttpOptions, ctx: Context) -> Outcome:
        extra: dict[str, Any] = {}
        if options.body is not None:
            extra["content"] = options.body
        if options.json_body is not None:
            extra["json"] = options.json_body
        try:
            response = fetch(options.method, options.url, options.headers, ctx.timeout, **extra)
        except ActionError as exc:
            return Outcome(False, ctx.redact(exc.message))
        ok = response.status_code in options.status
        return Outcome(
            ok,
            f"status {response.status_code}",
            ctx.redact(tail(response.text)),
            {"status": response.status_code},
        )

    def describe(self, options: HttpOptions) -> str:
        return f"{options.method} {options.url}"
