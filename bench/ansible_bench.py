"""ansible-playbook, for the step figures: installed into an environment of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from engine_overhead import Pair

ANSIBLE_VENV = Path(
    os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"), "backout-bench", "ansible"
)


def ansible_python() -> Path | None:
    """The Python of an environment of its own holding ansible-core, made (once, then
    reused) in ANSIBLE_VENV: ansible's dependencies never mix with backout's, and the
    figure does not depend on what the test environment happens to hold."""
    python = ANSIBLE_VENV / "bin" / "python"
    if not (ANSIBLE_VENV / "bin" / "ansible-playbook").exists():
        print(f"installing ansible-core into {ANSIBLE_VENV} (once) ...", file=sys.stderr)
        made = subprocess.run([sys.executable, "-m", "venv", str(ANSIBLE_VENV)], check=False)
        pip = [str(python), "-m", "pip", "install", "--quiet", "ansible-core"]
        if made.returncode != 0 or subprocess.run(pip, check=False).returncode != 0:
            print("could not install ansible-core: skipping ansible-playbook", file=sys.stderr)
            return None
    return python


def ansible_pair(folder: Path, command: list[str], extra: int) -> Pair | None:
    """``command`` as 1 and 1 + ``extra`` tasks of a playbook run on localhost."""
    python = ansible_python()
    if python is None:
        return None
    playbook = str(python.with_name("ansible-playbook"))
    books = []
    for name, steps in (("short", 1), ("long", 1 + extra)):
        tasks = "".join(
            f"    - name: step {i}\n      ansible.builtin.command: {' '.join(command)}\n"
            for i in range(steps)
        )
        book = folder / f"{name}-playbook.yaml"
        book.write_text(
            "- hosts: localhost\n  connection: local\n  gather_facts: false\n"
            f"  vars:\n    ansible_python_interpreter: {python}\n  tasks:\n{tasks}"
        )
        books.append([playbook, "-i", "localhost,", str(book)])
    return Pair("ansible-playbook", books[0], books[1], extra)
