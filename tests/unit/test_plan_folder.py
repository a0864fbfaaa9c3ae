"""The plans a server offers: the YAML files of its --plans folder, by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from backout.errors import NotFound, UsageError
from backout.server.plan_folder import PlanFolder


def test_names_are_the_yaml_files_without_their_suffix(tmp_path: Path) -> None:
    for name in ("shop.yaml", "cart.yml", "notes.txt", ".hidden.yaml"):
        (tmp_path / name).write_text("plan: x\n")
    (tmp_path / "sub.yaml").mkdir()
    folder = PlanFolder.of(tmp_path)
    assert folder.names() == ["cart", "shop"]
    assert folder.path("cart") == tmp_path.resolve() / "cart.yml"


@pytest.mark.parametrize("name", ["../etc/passwd", "missing", "sub", ".hidden", "shop/x"])
def test_a_name_outside_the_folder_or_unknown_is_not_found(tmp_path: Path, name: str) -> None:
    (tmp_path / "shop.yaml").write_text("plan: x\n")
    (tmp_path / "sub.yaml").mkdir()
    with pytest.raises(NotFound) as caught:
        PlanFolder.of(tmp_path).path(name)
    assert caught.value.hint == "the plans are: shop"


def test_no_folder_offers_nothing_and_says_how_to_offer() -> None:
    folder = PlanFolder.of(None)
    assert folder.names() == []
    with pytest.raises(NotFound) as caught:
        folder.path("shop")
    assert "--plans DIR" in caught.value.hint


def test_a_folder_that_is_not_one_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a folder"):
        PlanFolder.of(tmp_path / "nope")
