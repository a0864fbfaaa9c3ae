"""Terraform and OpenTofu, read: an output value (``output -json NAME``) or the state's
serial (``state pull``), as a baseline source. ``tofu`` takes the same commands and
prints the same JSON; name it in ``program:``.
"""

from __future__ import annotations

import json

from pydantic import Field

from backout.errors import ActionError
from backout.kernel.options import Context, Options, resolve
from backout.probes.base import Source
from backout.probes.toolcli import read_json, run_tool


class TerraformTarget(Options):
    dir: str = Field(".", description="The configuration folder (relative to the plan file).")
    program: str = Field("terraform", description="terraform, or tofu (a path, or on PATH).")


class TerraformSourceOptions(TerraformTarget):
    output: str | None = Field(
        None, description="Read this output's value; without it, the state's serial."
    )


class TerraformSource(Source):
    """``terraform:`` baseline source: an output's value, or the state serial."""

    kind = "terraform"
    Options = TerraformSourceOptions

    def read(self, options: TerraformSourceOptions, ctx: Context) -> str:
        folder = resolve(ctx.workdir, options.dir)
        if options.output:
            argv = [options.program, "output", "-no-color", "-json", options.output]
        else:
            argv = [options.program, "state", "pull"]
        data = read_json(run_tool(argv, ctx, timeout=ctx.timeout, cwd=folder), ctx)
        if options.output:
            return data if isinstance(data, str) else json.dumps(data, sort_keys=True)
        serial = data.get("serial") if isinstance(data, dict) else None
        if not isinstance(serial, int):
            raise ActionError(f"the state of {options.dir} has no serial: is it initialised?")
        return str(serial)

    def describe(self, options: TerraformSourceOptions) -> str:
        what = f"output {options.output}" if options.output else "state serial"
        return f"{options.program} {what} of {options.dir}"
