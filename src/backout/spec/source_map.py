"""Line and column of any path inside a YAML document loaded by ruamel.yaml (round-trip)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

Path = tuple[str | int, ...]


class SourceMap:
    """Answers ``where(path) -> (line, col)``, 1-based, falling back to the nearest parent."""

    def __init__(self, root: Any) -> None:
        self.root = root

    def where(self, path: Sequence[str | int]) -> tuple[int, int]:
        node, best = self.root, (1, 1)
        for part in path:
            position = _position(node, part)
            if position is None:
                break
            best = position
            node = _child(node, part)
            if node is None:
                break
        return best


def _position(node: Any, part: str | int) -> tuple[int, int] | None:
    try:
        if isinstance(node, CommentedMap) and part in node:
            line, col = node.lc.key(part)
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line, col = node.lc.item(part)
        else:
            return None
    except (KeyError, IndexError, TypeError):
        return None
    return int(line) + 1, int(col) + 1


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, CommentedMap):
        return node.get(part)
    if isinstance(node, CommentedSeq) and isinstance(part, int):
        return node[part]
    return None
