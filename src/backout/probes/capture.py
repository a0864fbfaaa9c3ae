"""Run a program with its standard output going to a file, whole.

Run as a script (``python -I -S capture.py OUT_FILE PROGRAM ARGS...``) under
:func:`backout.proc.run_process`, which keeps only the tail of a program's output: the
deploy tools' JSON (``helm status -o json``, ``terraform show -json``) is often larger
than that tail and must be read whole to be parsed. The script points its standard output
at ``OUT_FILE`` and replaces itself with the program (``exec``): same pid, same process
group, so timeouts, stops and orphan kills reach the program exactly as for any step.

Standard library only; nothing is imported but ``os`` and ``sys``.
"""

from __future__ import annotations

import os
import sys

NOT_FOUND = 127


def main(argv: list[str]) -> int:
    out_file, program = argv[0], argv[1:]
    fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.close(fd)
    try:
        os.execvp(program[0], program)  # noqa: S606 - an argv list, never a shell
    except OSError as exc:
        print(f"cannot start {program[0]}: {exc.strerror or exc}", file=sys.stderr)
    return NOT_FOUND


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
