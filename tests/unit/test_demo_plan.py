"""The demo's plan: one file, shipped in the package and copied verbatim to examples/."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from backout import commands
from backout.demo.workdir import layout

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"


def test_the_example_is_the_packaged_plan_byte_for_byte() -> None:
    packaged = (files("backout.demo") / "plan.yaml").read_bytes()
    assert EXAMPLE.read_bytes() == packaged


def test_the_example_validates_without_warnings() -> None:
    assert commands.validate([EXAMPLE], strict=True) == {str(EXAMPLE): []}


def test_the_layout_gives_the_plan_everything_it_names(tmp_path: Path) -> None:
    plan = layout(tmp_path)
    assert plan.read_bytes() == EXAMPLE.read_bytes()
    assert (tmp_path / "releases" / "current").readlink() == Path("v1")
    assert (tmp_path / "releases" / "v2" / "service.py").is_file()
    assert (tmp_path / "etc" / "demo.conf").is_file()
    restart = tmp_path / "bin" / "restart"
    assert restart.stat().st_mode & 0o111
    assert restart.read_text().startswith("#!/")
