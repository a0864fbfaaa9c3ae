"""``backout completion bash|zsh|fish``: print the shell completion script (click's)."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from backout.cli.base import out

PROG = "backout"
COMPLETE_VAR = "_BACKOUT_COMPLETE"  # what the script sets when it asks `backout` for words
SHELLS = ("bash", "zsh", "fish")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL; load it from your shell's start-up file:

    \b
      bash (4.4+), in ~/.bashrc:   eval "$(backout completion bash)"
      zsh, in ~/.zshrc:            eval "$(backout completion zsh)"
      fish:                        backout completion fish > ~/.config/fish/completions/backout.fish

    Commands, subcommands, options and choices complete; plan files complete as paths."""
    completer = get_completion_class(shell)
    assert completer is not None  # every shell click.Choice allows is built in
    script = completer(ctx.find_root().command, {}, PROG, COMPLETE_VAR).source()
    out.file.write(script if script.endswith("\n") else script + "\n")


COMMANDS: list[click.Command] = [completion]
