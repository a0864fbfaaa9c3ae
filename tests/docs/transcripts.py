"""Executable docs: find the ``$ backout …`` transcripts in Markdown, run them, compare.

A transcript is a fenced ```` ```text ```` block whose lines starting with ``$ `` are
commands (a line ending in ``\\`` continues on the next) and whose other lines are the
output they print, standard output and error together, as a terminal shows them. The
blocks of one document run in order, in one working folder of their own, as a reader
following it would: the folder a block ends in (``cd``) is where the next one starts.

A block is steered by an HTML comment on the line before its fence (Markdown renders
none of it)::

    <!-- doctest: setup=shop-tutorial -->     named setups (tests/docs/setups.py) run first
    <!-- doctest: skip reason="a real Slack" --> not run; a reason is required, skips are counted
    <!-- doctest: file=backout.yaml -->        any block: its text is written to that file
    <!-- doctest: run -->                      a ```sh block: run it as a script (exit 0)
    <!-- doctest: columns=120 -->              terminal width (default 100)
    <!-- doctest: background -->              "another terminal": see below
    <!-- doctest: part=NAME setup=… -->        a part of its own: see below
    <!-- doctest: interrupt="TEXT" -->         Ctrl-C once a command has printed TEXT

A ``background`` transcript is a second terminal: its commands start in a shell of their
own and the document goes on; its output is compared once the next transcript has run and
it has ended (a deploy in one terminal, ``backout approve`` in the other while it waits).
Its commands are written at once, so they can name no run id printed in the meantime, and
its ``cd`` does not carry over.

An ``interrupt`` transcript types Ctrl-C at the terminal once its command has printed
TEXT: SIGINT to the block's process group (the shell and the command in the foreground),
and ``^C`` in the output as a terminal echoes it. Its ``backout`` is the installed
program, not the fork server's, so that the signal reaches the command.

A ``part=NAME`` block starts a part of the document that runs on its own, from that
block to the next ``part`` (the blocks before the first one are the part ``""``, and
``part=`` alone goes back to it; a NAME used again goes on with that part): in a session
of its own (a folder, store and environment of its own), so that the parts of a long
document run side by side. Its setups must prepare all it needs: the blocks of the
other parts do not run first.

Output is compared after normalising what changes from run to run: run ids (the
document's ids are paired with the real ones in order of appearance, and commands that
name a document's id, or a prefix of it, get the real one), clock times, dates,
durations, the working folder and other temporary paths, process owners, a signal's
readings in a trigger's verdict (``errors 0.31 has been above 0.02``, ``8 of 120``), the
shell's report of a killed command (a terminal prints ``Killed``), and the width and
wrapping of tables (cells are compared, not box drawing). An output line that is exactly
``…`` stands for any number of lines.

``BACKOUT_DOCS_UPDATE=1`` rewrites each block that differs with the real output, with
the document's ids and folder put back (like ``cram -i``), so a changed message is
fixed in the doc by running the test once and reviewing ``git diff``.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.procs import default_sigint

DIRECTIVE = re.compile(r"^\s*<!--\s*doctest:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(`{3,})([\w+-]*)\s*$")
WILDCARD = {"…", "..."}
RUN_ID = re.compile(r"(?<![0-9a-f])[0-9a-f]{12}(?![0-9a-f])")
ID_PREFIX = re.compile(r"(?<![0-9a-zA-Z_])[0-9a-f]{4,12}(?![0-9a-zA-Z_])")
BOX_START = set("┏┃┡│└┌├╭╰┗┣┠╞╘╒┢┕┝")
BOX_CHARS = set("┏┓┗┛┃━┳┻╇╈╋┡┩│─┬┴┼└┘┌┐├┤╭╮╰╯═╞╡╪╘╛╒╕┣┫┠┨┯┷┿ ")
MARK = "\x1e"
NUMBER = r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?"

# what differs between two honest runs of the same command, in the order applied
RULES: list[tuple[re.Pattern[str], str]] = [
    # an API token (random), then its first characters as listings show them: before the
    # rules for hex digits, which could match a piece of either
    (re.compile(r"(?<![\w-])bo_[\w-]{40}(?![\w-])"), "bo_<TOKEN>"),
    (re.compile(r"(?<![\w-])bo_[\w-]{7}(?![\w-])"), "bo_<PREFIX>"),
    (
        re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"),
        "<TIMESTAMP>",
    ),
    (re.compile(r"\b\d{2}:\d{2}:\d{2}(?:\.\d+)?\b"), "<TIME>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}\b"), "<DATE>"),
    (re.compile(r"\b(\w+_s)=\d+(?:\.\d+)?"), r"\1=<N>"),
    (re.compile(r"\b\d+\.\d+(?:ms|s)\b"), "<DURATION>"),
    (re.compile(r"\b\d+\.\d+ s\b"), "<DURATION>"),  # a trigger's "above 0.5 for 2.1 s"
    # a lease's time left: a whole number of seconds on a slow machine ("expires in 4s")
    (re.compile(r"\b(expires in )\d+(?:ms|s)\b"), r"\1<DURATION>"),
    (re.compile(r"\(\d+ samples?\)"), "(<N> samples)"),  # readings in a time window
    # a fleet's evaluation lag over all its readings
    (
        re.compile(r"\d+ readings evaluated; lag p50 \d+ ms, p99 \d+ ms, max \d+ ms"),
        "<N> readings evaluated; lag <LAG>",
    ),
    (re.compile(r"\(\d+ of \d+\)"), "(<N> of <N>)"),  # requests in a time window
    # how much slower the latest drill was than the ones before it
    (re.compile(r"\b\d+% more than the median\b"), "<N>% more than the median"),
    # what a real service's traffic decides: the reading a trigger judged (`errors 0.31 has
    # been above 0.02`), a sequential test's counts and odds, the numbers of its evidence
    (re.compile(rf"\b(\w+) {NUMBER} (?=(?:has been|is|is not) (?:above|below) )"), r"\1 <VALUE> "),
    (re.compile(rf"\b\d+ of \d+ \({NUMBER}\)"), "<N> of <N> (<VALUE>)"),
    (re.compile(rf"\bare {NUMBER} to 1\b"), "are <ODDS> to 1"),
    (re.compile(rf"\bsince t={NUMBER}"), "since t=<EPOCH>"),
    (
        re.compile(rf"\b(value|breach_started_at|breached_for_s|at|samples_in_breach) = {NUMBER}"),
        r"\1 = <N>",
    ),
    (re.compile(rf"\bstatistic={NUMBER}"), "statistic=<N>"),
    (
        re.compile(r"(?:\b\d+(?:\.\d+)?(?:ms|[smhd])|<DURATION>) (old|ago|after the incident)\b"),
        r"<AGE> \1",
    ),
    # tries of a receiver that is down: as many as the retry delays (with jitter) allow
    (re.compile(r"\battempts[ =]\d+(?=,? +(?:error=)?ConnectError)"), "attempts <N>"),
    (re.compile(r"\bfailed attempts \d+(?=, still pending)"), "failed attempts <N>"),
    (re.compile(r"^( +)\d+(  <TIMESTAMP>  .*outbox\.delivered .*attempts=)\d+"), r"\1<N>\2<N>"),
    (re.compile(r"\bowner=[^,\s]+"), "owner=<OWNER>"),
    (re.compile(r"\bowner [\w.-]+:\d+:[0-9a-f]+"), "owner <OWNER>"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<UUID>"),
    # the why is there only when an attempt ended before the command's last wait did
    (re.compile(r"(notification\(s\) not delivered yet) \(.*?\);"), r"\1;"),
    (re.compile(r"\b(pid|start)('?: |=)\d+"), r"\1\2<N>"),
    (re.compile(r"\(pid \d+ on [\w.-]+\)"), "(pid <N> on <HOST>)"),  # an executor
    (re.compile(r"\b(host'?: '|host=)[^',\s]+"), r"\1<HOST>"),
    (re.compile(r"\b(plan_version\W{1,4})[0-9a-f]{16}\b"), r"\1<VERSION>"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<SHA256>"),
    (re.compile(r"\b[0-9a-f]{16}\b"), "<VERSION>"),  # a plan version: a setup's port is in it
    (re.compile(r'("(?:\w+_)?at": ?)\d+(?:\.\d+)?'), r"\1<EPOCH>"),
    (re.compile(r'^(etag: |If-None-Match: )"[^"]*"', re.IGNORECASE), r'\1"<ETAG>"'),
    (re.compile(r"\b[0-9a-f]{4,16}…"), "<HASH>…"),
    (re.compile(r"/tmp/[^\s/'\",):]+"), "/tmp/<TMP>"),
    # a non-interactive shell names its line and the pid: `bash: line 3:  4242 Killed  cmd`
    (re.compile(r"^bash: (?:line \d+: )?\s*\d+ Killed\b.*$"), "Killed"),
]


@dataclass
class Block:
    """One fenced block: where it is, what it says, what its directive asks."""

    doc: Path
    line: int  # 1-based line of the opening fence
    end: int  # 1-based line of the closing fence
    lang: str
    body: list[str]
    options: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.doc.name}:{self.line}"

    @property
    def is_transcript(self) -> bool:
        return self.lang == "text" and any(line.startswith("$ ") for line in self.body)

    @property
    def skip_reason(self) -> str | None:
        return self.options.get("reason", "") if "skip" in self.options else None

    def commands(self) -> list[tuple[str, list[str]]]:
        """(command as written, its expected output lines) in order."""
        out: list[tuple[str, list[str]]] = []
        lines = iter(self.body)
        for raw in lines:
            if raw.startswith("$ "):
                command = raw[2:]
                while command.endswith("\\"):
                    command += "\n" + next(lines, "")
                out.append((command, []))
            elif out:
                out[-1][1].append(raw)
            else:
                raise ValueError(f"{self.where}: output before the first `$ ` command")
        return out


def parse_options(text: str, where: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for word in shlex.split(text):
        key, _, value = word.partition("=")
        options[key] = value
    if "skip" in options and not options.get("reason"):
        raise ValueError(f'{where}: `doctest: skip` needs reason="why it cannot run here"')
    return options


def parts(doc: Path) -> list[str]:
    """The names of the document's parts in order, ``""`` (the blocks before the first
    ``part``) first when it has blocks."""
    found = [b.options["part"] for b in blocks(doc) if "part" in b.options]
    return list(dict.fromkeys(["", *found]))


def part_blocks(doc: Path, part: str) -> list[Block]:
    """The blocks of one part of the document (see :func:`parts`)."""
    current, out = "", []
    for block in blocks(doc):
        current = block.options.get("part", current)
        if current == part:
            out.append(block)
    return out


def blocks(doc: Path) -> list[Block]:
    """Every fenced block of a Markdown file, with the directive just before it."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, lang = match.groups()
        j = i + 1
        while j < len(lines) and not lines[j].startswith(fence):
            j += 1
        options: dict[str, str] = {}
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        if k >= 0 and (directive := DIRECTIVE.match(lines[k])):
            options = parse_options(directive.group(1), f"{doc.name}:{k + 1}")
        found.append(Block(doc, i + 1, j + 1, lang, lines[i + 1 : j], options))
        i = j + 1
    return found


# --- normalising -----------------------------------------------------------------------


def _cells(line: str) -> list[str]:
    parts = re.split(r"[┃│]", line.strip())
    return [" ".join(p.split()) for p in parts[1:-1]]


def _table(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    rows: list[tuple[int, list[str]]] = []
    fresh = True
    for number, line in lines:
        if set(line) <= BOX_CHARS:  # a rule between the header and the rows, or a border
            fresh = True
            continue
        cells = _cells(line)
        if not cells:
            continue
        if rows and not fresh and not cells[0] and len(cells) == len(rows[-1][1]):
            rows[-1] = (
                rows[-1][0],
                [f"{a} {b}".strip() for a, b in zip(rows[-1][1], cells, strict=False)],
            )
        else:
            rows.append((number, cells))
        fresh = False
    return [(number, "| " + " | ".join(cells) + " |") for number, cells in rows]


def normalise(text_lines: list[str], first: int = 1) -> list[tuple[int, str]]:
    """(line number, normalised text) for each line; a table becomes one line per row."""
    out: list[tuple[int, str]] = []
    table: list[tuple[int, str]] = []
    for number, line in enumerate(text_lines, first):
        stripped = line.lstrip()
        if stripped and (stripped[0] in BOX_START or (table and stripped[0] in BOX_CHARS)):
            table.append((number, line))
            continue
        if table:
            out += _table(table)
            table = []
        out.append((number, line))
    out += _table(table)
    result: list[tuple[int, str]] = []
    for number, line in out:
        for pattern, replacement in RULES:
            line = pattern.sub(replacement, line)
        result.append((number, line.rstrip()))
    while result and not result[-1][1]:
        result.pop()
    return result


def matches(expected: list[str], actual: list[str]) -> bool:
    """Equal, where an expected line ``…`` stands for any number of actual lines."""
    pattern = "".join(
        r"(?:[^\n]*\n)*?" if line in WILDCARD else re.escape(line) + r"\n" for line in expected
    )
    return re.fullmatch(pattern, "".join(line + "\n" for line in actual)) is not None


# --- run ids ---------------------------------------------------------------------------


@dataclass
class IdMap:
    """The document's run ids and the real ones, paired in order of first appearance."""

    doc_to_real: dict[str, str] = field(default_factory=dict)
    # runs a setup made that the doc names before any output shows them (``backout
    # resume ID`` as a block's first command): the next unknown id a command names
    unclaimed: list[str] = field(default_factory=list)

    def pair(self, expected: str, actual: str) -> None:
        want = [i for i in dict.fromkeys(RUN_ID.findall(expected)) if i not in self.doc_to_real]
        real_known = set(self.doc_to_real.values())
        got = [i for i in dict.fromkeys(RUN_ID.findall(actual)) if i not in real_known]
        both = set(want) & set(got)  # a hash printed the same in both is not an id
        for doc_id, real_id in zip(
            [i for i in want if i not in both], [i for i in got if i not in both], strict=False
        ):
            self.doc_to_real[doc_id] = real_id

    def command(self, command: str) -> str:
        """The command with each of the document's ids (or a prefix) made the real one."""

        def real(match: re.Match[str]) -> str:
            token = match.group(0)
            if RUN_ID.fullmatch(token) and token not in self.doc_to_real and self.unclaimed:
                self.doc_to_real[token] = self.unclaimed.pop(0)
            for doc_id, real_id in self.doc_to_real.items():
                if doc_id.startswith(token):
                    return real_id[: len(token)]
            return token

        return ID_PREFIX.sub(real, command)

    def to_doc(self, text: str) -> str:
        for doc_id, real_id in self.doc_to_real.items():
            text = text.replace(real_id, doc_id)
        return text


# --- running ---------------------------------------------------------------------------


@dataclass
class Session:
    """One document's working folder, environment and run ids."""

    root: Path
    env: dict[str, str]
    cwd: Path = field(init=False)
    ids: IdMap = field(default_factory=IdMap)
    timeout: float = 180.0
    # what a setup left running (a background executor, a receiver): undone at the end
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    # the doc's text for what differs here (a fixed port the doc shows, and the free one a
    # setup took): put in the commands, taken out of their output
    aliases: dict[str, str] = field(default_factory=dict)
    # what a document's setups keep between its blocks (the services they started)
    state: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cwd = self.root

    def script(self, body: str, columns: int = 100) -> subprocess.CompletedProcess[str]:
        state = self.root / ".doctest-cwd"
        text = (
            f"cd {shlex.quote(str(self.cwd))}\n{body}\n__st=$?\npwd > {shlex.quote(str(state))}\n"
        )
        text += "exit $__st\n"
        with subprocess.Popen(
            ["bash", "--noprofile", "--norc", "-c", text],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**self.env, "COLUMNS": str(columns)},
            start_new_session=True,
        ) as shell:
            try:
                output, _ = shell.communicate(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                os.killpg(shell.pid, signal.SIGKILL)  # the shell's group: its commands too
                output, _ = shell.communicate()
                output += f"\n[doctest: killed after {self.timeout:g}s]"
        result = subprocess.CompletedProcess(shell.args, shell.returncode, output, None)
        if state.exists():
            self.cwd = Path(state.read_text().strip())
        return result

    def transcript(self, block: Block) -> list[str]:
        """Run the block's commands one by one in one shell (so ``echo $?`` and ``cd``
        work): each command's output. After each command the ids it printed are paired
        with the doc's, so the next command can name a run the previous one made."""
        env = {**self.env, "COLUMNS": block.options.get("columns", "100")}
        interrupt = block.options.get("interrupt")
        if interrupt:  # the real program: a signal to the fork server's shim stops there
            env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        outputs: list[str] = []
        with subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            # as at a terminal: a suite run in the background (`make test &`, nohup) hands
            # its children an ignored SIGINT, which a Ctrl-C block must not inherit
            preexec_fn=default_sigint,
        ) as shell:
            assert shell.stdin is not None
            assert shell.stdout is not None
            fd = shell.stdout.fileno()
            try:
                shell.stdin.write(f"cd {shlex.quote(str(self.cwd))}\n".encode())
                for command, expected in block.commands():
                    line = self.ids.command(command)
                    for doc_text, real_text in self.aliases.items():
                        line = line.replace(doc_text, real_text)
                    shell.stdin.write(
                        f"{{ {line}\n}} </dev/null\n__st=$?; printf '\\n{MARK}{MARK}\\n'"
                        f"; ( exit $__st )\n".encode()
                    )
                    shell.stdin.flush()
                    output = self._read_until_mark(fd, interrupt=(shell.pid, interrupt))
                    if interrupt and "^C\n" in output:
                        interrupt = None  # one Ctrl-C per block
                    outputs.append(output)
                    self.ids.pair("\n".join(expected), output)
                    if output.endswith(f"[doctest: killed after {self.timeout:g}s]"):
                        break
                shell.stdin.write(b"pwd\n")
                shell.stdin.close()
                cwd = self._read_until_mark(fd, final=True).strip()
                if cwd:
                    self.cwd = Path(cwd)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(shell.pid, signal.SIGKILL)  # whatever the block left running
        return outputs

    def start(self, block: Block) -> Background:
        """Start the block's commands in a shell of their own (another terminal); their
        outputs come from :meth:`Background.outputs`."""
        env = {**self.env, "COLUMNS": block.options.get("columns", "100")}
        script = f"cd {shlex.quote(str(self.cwd))}\n"
        commands = block.commands()
        for command, _ in commands:
            line = self.ids.command(command)
            for doc_text, real_text in self.aliases.items():
                line = line.replace(doc_text, real_text)
            script += f"{{ {line}\n}} </dev/null\nprintf '\\n{MARK}{MARK}\\n'\n"
        shell = subprocess.Popen(
            ["bash", "--noprofile", "--norc", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        running = Background(block, shell, len(commands), self.timeout)
        self.cleanups.append(running.kill)
        return running

    def _read_until_mark(
        self, fd: int, final: bool = False, interrupt: tuple[int, str | None] = (0, None)
    ) -> str:
        """The output up to the mark a command's end prints; with ``interrupt`` (a process
        group, a text), SIGINT to the group once the output holds the text."""
        group, text = interrupt
        data = b""
        deadline = time.monotonic() + self.timeout
        end = f"\n{MARK}{MARK}\n".encode()
        while final or not data.endswith(end):
            left = deadline - time.monotonic()
            if left <= 0:
                return data.decode(errors="replace") + f"[doctest: killed after {self.timeout:g}s]"
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
            if text and text in data.decode(errors="replace"):
                os.killpg(group, signal.SIGINT)
                data += b"^C\n"  # what the terminal echoes
                text = None
        text = data.decode(errors="replace")
        return text[: -len(end)] if text.endswith(end.decode()) else text


class Background:
    """A transcript running in a shell of its own; its output is read as it comes (a
    full pipe would stop the command)."""

    def __init__(self, block: Block, shell: subprocess.Popen[bytes], count: int, timeout: float):
        self.block, self.shell, self.count, self.timeout = block, shell, count, timeout
        self.data = b""
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.shell.stdout is not None
        while chunk := os.read(self.shell.stdout.fileno(), 65536):
            self.data += chunk

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.shell.pid, signal.SIGKILL)  # the shell's group: its commands too
        self.shell.wait()
        self.reader.join(5)
        if self.shell.stdout is not None:
            self.shell.stdout.close()

    def outputs(self) -> list[str]:
        """Each command's output, once the shell has ended (or was killed at the timeout)."""
        try:
            self.shell.wait(self.timeout)
            killed = ""
        except subprocess.TimeoutExpired:
            killed = f"[doctest: killed after {self.timeout:g}s]"
        self.kill()
        parts = (self.data.decode(errors="replace") + killed).split(f"\n{MARK}{MARK}\n")
        return parts[: self.count] if len(parts) > self.count else parts


@dataclass
class Outcome:
    block: Block
    ok: bool
    message: str = ""
    new_body: list[str] | None = None


def compare(block: Block, session: Session, outputs: list[str]) -> Outcome:
    commands = block.commands()
    expected_lines = list(block.body)
    doc_tmp = next(iter(re.findall(r"/tmp/[^\s/'\",):]+", "\n".join(block.body))), "/tmp/work")
    real_paths = sorted({str(session.cwd), str(session.root)}, key=len, reverse=True)
    actual_raw: list[str] = []
    for (command, _), output in zip(commands, outputs, strict=False):
        actual_raw += ("$ " + command).splitlines()
        text = output[:-1] if output.endswith("\n") else output
        if text:
            actual_raw += text.split("\n")
    session.ids.pair("\n".join(expected_lines), "\n".join(actual_raw))
    actual_doc = []
    for line in actual_raw:
        for path in real_paths:
            line = line.replace(path, doc_tmp)
        for doc_text, real_text in session.aliases.items():
            line = line.replace(real_text, doc_text)
        actual_doc.append(session.ids.to_doc(line))
    want = normalise(expected_lines, block.line + 1)
    got = normalise(actual_doc, 1)
    if matches([t for _, t in want], [t for _, t in got]):
        return Outcome(block, True)
    return Outcome(
        block, False, _diff(block, want, got, actual_doc), _merge(block.body, actual_doc)
    )


def _line(text: str) -> str:
    for pattern, replacement in RULES:
        text = pattern.sub(replacement, text)
    return text.rstrip()


def _merge(doc: list[str], actual: list[str]) -> list[str]:
    """The real output for the doc, keeping the doc's own line wherever it differs from
    the real one only in what is normalised (so an update does not churn every time)."""
    actual = [line.rstrip() for line in actual]
    while actual and not actual[-1]:
        actual.pop()
    a, b = [_line(x) for x in doc], [_line(x) for x in actual]
    merged: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        merged += doc[i1:i2] if tag == "equal" else actual[j1:j2]
    return merged


def _diff(
    block: Block, want: list[tuple[int, str]], got: list[tuple[int, str]], actual: list[str]
) -> str:
    lines = [f"{block.doc}:{block.line}: the transcript differs (- the doc, + the product):"]
    a, b = [t for _, t in want], [t for _, t in got]
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        for number, text in want[i1:i2]:
            lines.append(f"  {block.doc.name}:{number}: - {text}")
        at = want[i1][0] if i1 < len(want) else block.end
        for _, text in got[j1:j2]:
            lines.append(f"  {block.doc.name}:{at}: + {text}")
    lines.append("  the product's output, as it was printed:")
    lines += [f"    {line}" for line in actual]
    return "\n".join(lines)


def rewrite(doc: Path, changes: list[Outcome]) -> None:
    """Put each changed block's real output in place (BACKOUT_DOCS_UPDATE=1)."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    for outcome in sorted(changes, key=lambda o: o.block.line, reverse=True):
        if outcome.new_body is not None:
            lines[outcome.block.line : outcome.block.end - 1] = outcome.new_body
    doc.write_text("\n".join(lines) + "\n", encoding="utf-8")


def updating() -> bool:
    return os.environ.get("BACKOUT_DOCS_UPDATE") == "1"


Setup = Callable[[Session], None]


def run_document(
    doc: Path, session: Session, setups: dict[str, Setup], part: str | None = None
) -> Iterator[Outcome]:
    """Run every block of a document (or of one of its parts) in order; yield each
    compared or checked block."""
    running: Background | None = None
    chosen = blocks(doc) if part is None else part_blocks(doc, part)
    for outcome in _run_blocks(chosen, session, setups):
        if isinstance(outcome, Background):
            if running is not None:
                message = f"{outcome.block.where}: {running.block.where} still runs in background"
                yield Outcome(outcome.block, False, message)
                return
            running = outcome
            continue
        yield outcome
        if running is not None and outcome.block.is_transcript:
            yield compare(running.block, session, running.outputs())
            running = None
    if running is not None:
        yield compare(running.block, session, running.outputs())


def _run_blocks(
    chosen: list[Block], session: Session, setups: dict[str, Setup]
) -> Iterator[Outcome | Background]:
    for block in chosen:
        if block.skip_reason is not None:
            continue
        for name in filter(None, block.options.get("setup", "").split(",")):
            if name not in setups:
                yield Outcome(block, False, f"{block.where}: no setup named {name!r}")
                return
            setups[name](session)
        if "file" in block.options:
            target = session.cwd / block.options["file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("\n".join(block.body) + "\n", encoding="utf-8")
        elif "run" in block.options:
            result = session.script("\n".join(block.body))
            ok = result.returncode == 0
            yield Outcome(
                block,
                ok,
                "" if ok else f"{block.where}: exit {result.returncode}\n" + result.stdout,
            )
        elif block.is_transcript and "background" in block.options:
            yield session.start(block)
        elif block.is_transcript:
            outputs = session.transcript(block)
            yield compare(block, session, outputs)
