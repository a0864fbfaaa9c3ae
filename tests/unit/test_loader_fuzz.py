"""No input crashes or hangs the loader: mutated example plans only ever raise PlanError,
with every issue pinned to a line and column; and each input that once crashed or hung
`backout validate` is now one `error: FILE:LINE:COL` line per issue and exit 2."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backout.cli import cli
from backout.errors import Issue, PlanError
from backout.plans import load_plan
from backout.spec import yamlfile
from backout.spec.lint import lint
from backout.spec.yamlfile import MAX_ALIAS_NODES, MAX_BYTES, MAX_DEPTH

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))
# without their leading comment blocks, so that edits land in the YAML itself
SEEDS = [re.sub(rb"\A(?:#.*\n|\s*\n)*", b"", path.read_bytes()) for path in EXAMPLES]

# what YAML (and the templates inside plans) give meaning to
SIGNIFICANT = [
    b":",
    b": ",
    b"- ",
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b"&a ",
    b"*a",
    b"<<: *a\n",
    b"!!str ",
    b"!!binary ",
    b"!!python/object:os.system ",
    b"!custom ",
    b"? ",
    b"|",
    b">",
    b"#",
    b"'",
    b'"',
    b"\n",
    b"  ",
    b"\t",
    b"---\n",
    b"...\n",
    b"%YAML 1.1\n",
    b"~",
]
# values that once crashed or hung the loader, or that Python refuses to build
VALUES = [
    b"9" * 4400,
    b"-" + b"9" * 5000,
    b"0x" + b"f" * 5000,
    b"2024-02-30",
    b"2024-13-01",
    b"1:2:3",
    b".inf",
    b".nan",
    b"0o17",
    b"1_000",
    b"yes",
    b"null",
    b"~",
    b"&a x",
    b"*a",
    b"&a [*a]",
    b"*undefined",
    b"!!binary Zm9v",
    b"!!binary ###",
    b"!!int x",
    b"!!float x",
    b"!!timestamp x",
    b"!!set {a}",
    b"!!omap [a: 1]",
    b"? [a]",
    b"{[a]: b}",
    b'"\\x07"',
    b'"{{ run.releas }}"',
    b'"{{ " + b"(" * 120 + b"1" + b")" * 120 + b" }}"',
    b'"{% for x in run %}{{ x.y }}{% endfor %}"',
    b'"{{ 1 / 0 }}"',
    b'"{{"',
]
CONTROL = [bytes([code]) for code in [*range(0, 9), 11, 12, *range(14, 32), 127]] + [
    "\x85".encode(),
    "\u2028".encode(),
    "\ufffe".encode(),
    b"\xed\xa0\x80",
    b"\xff",
    b"\xc3",
]
EDITS = ["flip", "insert", "value", "value", "value", "control", "truncate", "dup", "nest", "alias"]


def alias_bomb(levels: int) -> bytes:
    lines = [b'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, levels):
        refs = b", ".join([b"*a%d" % (n - 1)] * 9)
        lines.append(b"a%d: &a%d [%s]" % (n, n, refs))
    return b"\n".join(lines) + b"\n"


@st.composite
def mutations(draw: st.DrawFn) -> bytes:
    """One example plan with one to three edits of the kinds that once crashed the loader."""
    text = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        text = _edit(draw, text, draw(st.sampled_from(EDITS)), draw(st.integers(0, len(text))))
    return bytes(text)


def _edit(draw: st.DrawFn, text: bytearray, kind: str, at: int) -> bytearray:
    if kind == "flip" and at < len(text):
        text[at] = draw(st.integers(0, 255))
    elif kind == "insert":
        text[at:at] = draw(st.sampled_from(SIGNIFICANT))
    elif kind == "value":  # replace what follows one `key: ` with a hostile value
        starts = [i + 2 for i in range(len(text)) if text[i : i + 2] == b": "] or [0]
        start = draw(st.sampled_from(starts))
        end = text.find(b"\n", start)
        text[start : end if end >= 0 else len(text)] = draw(st.sampled_from(VALUES))
    elif kind == "control":
        text[at:at] = draw(st.sampled_from(CONTROL))
    elif kind == "truncate":
        del text[at:]
    elif kind == "dup":
        lines = bytes(text).splitlines(keepends=True) or [b""]
        line = draw(st.integers(0, len(lines) - 1))
        text = bytearray(b"".join(lines[: line + 1] + lines[line:]))
    elif kind == "nest":
        depth = draw(st.integers(MAX_DEPTH - 5, 400))
        text[at:at] = b"[" * depth + b"]" * depth
    elif kind == "alias":  # aliases in front of the plan: harmless at 2 levels, a bomb at 9
        text[0:0] = alias_bomb(draw(st.integers(2, 9)))
    return text


def problems(path: Path) -> list[Issue] | None:
    """The issues of a plan that does not load, or ``None`` when it loads (and lints)."""
    try:
        lint(load_plan(path))
    except PlanError as exc:
        return exc.issues
    return None


@settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=mutations())
def test_mutated_plans_only_ever_raise_plan_errors(
    data: bytes, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzzed.yaml"
    path.write_bytes(data)
    issues = problems(path)  # anything but a PlanError escapes and fails the test
    assert issues != []
    for issue in issues or []:
        assert issue.line >= 1, str(issue)
        assert issue.col >= 1, str(issue)
        assert len(str(issue).splitlines()) == 1, str(issue)


def positions(value: object, path: tuple[object, ...] = ()) -> list[object]:
    """Every key and item of a loaded document with its line and column."""
    found: list[object] = []
    lc = getattr(value, "lc", None)
    if isinstance(value, dict) and lc is not None:
        for key in value:
            found.append((path, key, (lc.data or {}).get(key)))
            found += positions(value[key], (*path, key))
    elif isinstance(value, list) and lc is not None:
        for index, item in enumerate(value):
            found.append((path, index, (lc.data or {}).get(index)))
            found += positions(item, (*path, index))
    return found


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(data=mutations())
def test_libyaml_reads_every_document_as_the_pure_parser_does(data: bytes) -> None:
    """The fast path (libyaml's scanner, ruamel's composer and constructor) gives the same
    values at the same places as ruamel's pure round-trip loader, for every document the
    pure loader reads; what libyaml refuses is read again by the pure one."""
    try:
        text = data.decode("utf-8")
        expected = yamlfile._parser().load(text)
    except (UnicodeDecodeError, yamlfile.YAMLError, ValueError, RecursionError):
        return  # refused either way: the test above checks how
    loaded = yamlfile._load(text)
    assert loaded == expected
    assert positions(loaded) == positions(expected)
    assert type(loaded) is type(expected)


@pytest.mark.parametrize(
    "text",
    [
        "%YAML 1.1\n---\na: yes\nb: 010\nc: 1:20\n",  # YAML 1.1's booleans, octal, base 60
        "a: yes\nb: 010\nc: 0o10\nd: 1_000\ne: .inf\nf: 2024-01-02\ng: ~\n",
        "a: &x {b: 1}\nc:\n  <<: *x\n  d: 2\n",
        "s: |\n  line\n   more\nt: >-\n  folded\n  text\n",
        'k: "\\u263A \\x41"\n',
        "- a\n- b: [1, {c: d}]\n",
    ],
)
def test_libyaml_reads_these_as_the_pure_parser_does(text: str) -> None:
    expected = yamlfile._parser().load(text)
    loaded = yamlfile._CLoader(text).load()
    assert (loaded, positions(loaded)) == (expected, positions(expected))


def test_a_document_libyaml_refuses_is_named_in_the_pure_parsers_words() -> None:
    text = "plan: p\n  bad: indent\n"
    with pytest.raises(yamlfile.YAMLError) as pure:
        yamlfile._parser().load(text)
    with pytest.raises(yamlfile.YAMLError) as fast:
        yamlfile._CLoader(text).load()
    with pytest.raises(yamlfile.YAMLError) as loaded:
        yamlfile._load(text)
    assert str(loaded.value) == str(pure.value) != str(fast.value)


def test_libyaml_is_the_parser_in_use() -> None:
    """ruamel.yaml.clib is a dependency: without it every load takes 5x longer."""
    assert yamlfile.CParser is not None


# --- each input that crashed or hung `backout validate`, through the CLI -----------------
WriteBytes = Callable[[bytes], Path]


@pytest.fixture
def write_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WriteBytes:
    monkeypatch.chdir(tmp_path)

    def write(data: bytes) -> Path:
        path = tmp_path / "plan.yaml"
        path.write_bytes(data)
        return path

    return write


def validate(path: Path) -> Result:
    return CliRunner().invoke(cli, ["validate", path.name], obj={})


def only_error(result: Result) -> str:
    """The one line `validate` printed, after checking it is an error and nothing crashed."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_alias_bomb_fails_at_the_first_alias_past_the_limit(write_bytes: WriteBytes) -> None:
    # 9 levels of 9 would expand to 387 million strings (this file is 373 bytes)
    line = only_error(validate(write_bytes(alias_bomb(9))))
    assert line == (
        f"error: plan.yaml:5:10: aliases expand to more than {MAX_ALIAS_NODES} values "
        "(an alias bomb?) (use fewer aliases (*name), or write the values out)"
    )


def test_a_few_small_aliases_are_fine(write_bytes: WriteBytes) -> None:
    text = (
        b"plan: p\nsteps:\n"
        b"  - &restart {name: restart, run: [./bin/restart], timeout: 10s}\n"
        b"  - *restart\n  - {<<: *restart, name: restart again}\n"
    )
    result = validate(write_bytes(text))
    assert result.exit_code == 0, result.output
    assert load_plan(write_bytes(text)).plan.steps[2].name == "restart again"


def test_an_alias_that_contains_itself(write_bytes: WriteBytes) -> None:
    line = only_error(validate(write_bytes(b"plan: p\nsteps: &s [*s]\n")))
    assert line.startswith("error: plan.yaml:2:12: alias *s refers to a value that contains it")


def test_control_character_is_named_and_placed(write_bytes: WriteBytes) -> None:
    line = only_error(validate(write_bytes(b"plan: p\nowner: a\x07b\nsteps: []\n")))
    assert line.startswith("error: plan.yaml:2:9: control character U+0007 is not allowed")
    assert '"\\x07"' in line


def test_integer_beyond_pythons_digit_limit(write_bytes: WriteBytes) -> None:
    line = only_error(validate(write_bytes(b"plan: p\nrto: " + b"9" * 4400 + b"\nsteps: []\n")))
    assert line.startswith("error: plan.yaml:2:6: an integer of 4400 digits is too long")
    assert "quote it to make it text" in line


@pytest.mark.parametrize("opening", [b"[", b"- "])
def test_nesting_deeper_than_the_limit(write_bytes: WriteBytes, opening: bytes) -> None:
    if opening == b"[":
        body = b"[" * 250 + b"]" * 250
    else:  # block style: each level one more "- " on its own line
        body = b"\n" + b"".join(b"  " * n + b"-\n" for n in range(120))
    line = only_error(validate(write_bytes(b"plan: p\nsteps: " + body + b"\n")))
    # FILE:LINE:COL: message: no field placeholder for a problem of the file as a whole
    assert re.match(rf"error: plan\.yaml:\d+:\d+: nested more than {MAX_DEPTH} levels deep", line)


def test_a_file_larger_than_the_cap(write_bytes: WriteBytes) -> None:
    data = b"plan: p\nsteps: []\n" + b"# padding\n" * (MAX_BYTES // 10 + 1)
    line = only_error(validate(write_bytes(data)))
    assert line.startswith(f"error: plan.yaml:1:1: the file is larger than {MAX_BYTES // 1024} KiB")


def test_invalid_utf8(write_bytes: WriteBytes) -> None:
    line = only_error(validate(write_bytes(b"plan: p\nowner: caf\xe9\nsteps: []\n")))
    assert line.startswith("error: plan.yaml:2:11: byte 0xe9 is not valid UTF-8")


def test_an_impossible_date(write_bytes: WriteBytes) -> None:
    line = only_error(validate(write_bytes(b"plan: p\nowner: 2024-02-30\nsteps: []\n")))
    assert line.startswith("error: plan.yaml:2:8: cannot read this value:")


def test_a_template_nested_beyond_pythons_limits(write_bytes: WriteBytes) -> None:
    template = b'"{{ ' + b"(" * 300 + b"1" + b")" * 300 + b' }}"'
    text = b"plan: p\nsteps:\n  - name: s\n    run: [echo, " + template + b"]\n"
    line = only_error(validate(write_bytes(text)))
    assert "plan.yaml:4:17: steps[0].run[1]: template does not parse: it nests too deeply" in line
