"""File probes: ``file_hash`` check (drift detection), ``file_hash`` and ``readlink`` sources."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from backout.errors import ActionError
from backout.kernel.options import Context, Options, resolve
from backout.probes.base import Check, Source, Verdict


class PathOptions(Options):
    path: str = Field(description="A path relative to the plan file.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value


class FileHashCheckOptions(PathOptions):
    equals: str = Field(description="Expected sha256, usually `{{ baseline.NAME }}`.")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


class FileHashCheck(Check):
    kind = "file_hash"
    Options = FileHashCheckOptions

    def check(self, options: FileHashCheckOptions, ctx: Context) -> Verdict:
        path = resolve(ctx.workdir, options.path)
        try:
            actual = sha256_file(path)
        except OSError as exc:
            return Verdict(False, f"cannot read {options.path}: {exc.strerror}")
        if actual != options.equals.strip():
            return Verdict(
                False,
                f"{options.path} has drifted: sha256 {actual[:12]}…, "
                f"expected {options.equals.strip()[:12]}…",
                actual,
            )
        return Verdict(True, f"{options.path} matches sha256 {actual[:12]}…", actual)

    def describe(self, options: FileHashCheckOptions) -> str:
        return f"{options.path} has sha256 {options.equals}"


class FileHashSource(Source):
    kind = "file_hash"
    Options = PathOptions

    def read(self, options: PathOptions, ctx: Context) -> str:
        try:
            return sha256_file(resolve(ctx.workdir, options.path))
        except OSError as exc:
            raise ActionError(f"cannot hash {options.path}: {exc.strerror}") from exc

    def describe(self, options: PathOptions) -> str:
        return f"sha256 of {options.path}"


class ReadlinkSource(Source):
    kind = "readlink"
    Options = PathOptions

    def read(self, options: PathOptions, ctx: Context) -> str:
        try:
            return os.readlink(resolve(ctx.workdir, options.path))
        except OSError as exc:
            raise ActionError(f"cannot read symlink {options.path}: {exc.strerror}") from exc

    def describe(self, options: PathOptions) -> str:
        return f"target of symlink {options.path}"
