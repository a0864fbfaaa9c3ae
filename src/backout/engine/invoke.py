"""Call an action or check with a hard deadline, turning every failure into a result.

Built-in actions honour their timeout themselves; this guard is for plugins that do not,
so that nothing waits forever: after ``timeout + grace`` the run moves on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from backout.errors import BackoutError

T = TypeVar("T")
GRACE_S = 5.0


def with_deadline(call: Callable[[], T], timeout: float, on_error: Callable[[str], T]) -> T:
    box: dict[str, T] = {}
    failure: list[str] = []

    def target() -> None:
        try:
            box["value"] = call()
        except BackoutError as exc:
            failure.append(f"{exc.message} (hint: {exc.hint})" if exc.hint else exc.message)
        except Exception as exc:
            failure.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=target, name="backout-action", daemon=True)
    thread.start()
    thread.join(timeout + GRACE_S)
    if thread.is_alive():
        return on_error(f"did not return within its timeout of {timeout:g}s")
    if failure:
        return on_error(failure[0])
    return box["value"]
