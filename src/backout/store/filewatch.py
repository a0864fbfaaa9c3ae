"""Wake up when a file of a folder is written: Linux inotify, through libc (no package).

The SQLite watcher of :mod:`backout.store.notices` asks the file whether anyone committed
every ``WATCH_S``; with this it also asks the moment a commit writes the database or its
write-ahead log, so a commit of another process reaches this one's waiters in about a
millisecond instead of half a poll on average. The poll stays: this only makes it early.
Where inotify is not there (not Linux, no libc, a limit on watches reached), :func:`watch`
returns None and the poll alone is what there was before.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import select
import struct
from collections.abc import Collection
from pathlib import Path

IN_MODIFY = 0x00000002
IN_CREATE = 0x00000100
IN_MOVED_TO = 0x00000080
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name
_READ_BYTES = 64 * 1024


class FolderWatch:
    """An inotify watch on one folder, for writes to the files named ``names``."""

    def __init__(self, fd: int, names: Collection[str]) -> None:
        self.fd = fd
        self.names = {name.encode() for name in names}
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    def wait(self, timeout: float) -> bool:
        """Until one of the files is written, or ``timeout`` seconds: True when written.
        Writes that came since the last call count (they are queued in the kernel)."""
        if not self._poll.poll(max(0, int(timeout * 1000))):
            return False
        return self._drain()

    def _drain(self) -> bool:
        written = False
        while True:
            try:
                data = os.read(self.fd, _READ_BYTES)
            except BlockingIOError:
                return written
            except OSError:
                return True  # cannot tell: let the caller look
            if not data:
                return written
            offset = 0
            while offset + _EVENT.size <= len(data):
                _, _, _, length = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
                written = written or name in self.names
                offset += _EVENT.size + length

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def watch(folder: str | Path, names: Collection[str]) -> FolderWatch | None:
    """A watch on ``folder`` for writes to ``names`` (created, written, moved in); None
    when inotify cannot be had here."""
    libc = _libc()
    if libc is None:
        return None
    fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    if fd < 0:
        return None
    mask = IN_MODIFY | IN_CREATE | IN_MOVED_TO
    if libc.inotify_add_watch(fd, os.fsencode(os.fspath(folder)), mask) < 0:
        os.close(fd)
        return None
    return FolderWatch(fd, names)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library this Python runs with (its symbols are the process's own: no search
    for a file, no ``ldconfig``); None without inotify."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    except (OSError, AttributeError):
        return None
    return libc
