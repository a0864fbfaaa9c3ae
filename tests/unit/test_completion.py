"""`backout completion bash|zsh|fish` prints click's completion script, and the bash one,
loaded into a real bash, completes `backout snap<TAB>` to the subcommands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from backout.cli import cli


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_each_shell_gets_a_script(shell: str) -> None:
    result = CliRunner().invoke(cli, ["completion", shell])
    assert result.exit_code == 0, result.output
    assert "_BACKOUT_COMPLETE" in result.output
    assert f"{shell}_complete" in result.output  # what the script asks `backout` for
    assert "backout" in result.output


def test_an_unknown_shell_exits_2() -> None:
    result = CliRunner().invoke(cli, ["completion", "tcsh"])
    assert result.exit_code == 2
    assert "'tcsh' is not one of 'bash', 'zsh', 'fish'" in result.output


def _bash_with_backout_on_path(tmp_path: Path) -> dict[str, str]:
    """A PATH whose `backout` is this checkout's (the script calls the program by name)."""
    shim = tmp_path / "bin" / "backout"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m backout "$@"\n')
    shim.chmod(0o755)
    return {**os.environ, "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_a_subcommand_and_an_option(tmp_path: Path) -> None:
    script = CliRunner().invoke(cli, ["completion", "bash"]).output
    (tmp_path / "completion.bash").write_text(script)
    env = _bash_with_backout_on_path(tmp_path)

    def complete(*words: str) -> list[str]:
        words_text = " ".join(words)
        program = (
            "source completion.bash; "
            f"COMP_WORDS=({words_text}); COMP_CWORD={len(words) - 1}; "
            '_backout_completion backout; printf "%s\\n" "${COMPREPLY[@]}"'
        )
        done = subprocess.run(
            ["bash", "--norc", "-c", program],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert complete("backout", "snap") == ["snapshot", "snapshots"]
    assert "--status" in complete("backout", "runs", "--st")
    assert complete("backout", "runs", "--status", "needs") == ["needs_attention"]
