"""The low-level file calls behind durable writes, in one module so that fault
tests can replace them (``self.patch(disk, "sync_file", ...)``)."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

# How much newly written data is worth an early writeback request (`start_writeback`).
WRITEBACK_STEP = 4 << 20

_SYNC_FILE_RANGE_WRITE = 2  # linux/fs.h: start writeback of dirty pages, do not wait for it


def _load_sync_file_range() -> Callable[..., int] | None:
    """libc's sync_file_range (Linux), or None where there is none."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_sync_file_range = _load_sync_file_range()


def sync_file(fd: int) -> None:
    """Make the file's bytes durable (before it is renamed into the store)."""
    os.fsync(fd)


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Let the kernel start writing ``length`` bytes at ``offset`` to disk now, without waiting for it.

    Called as a temp file grows, so that the `sync_file` before its rename
    only waits for the last few MiB instead of the whole file (a 200 MiB
    fsync took 0.1 s here, 0.01 s after write-behind). Only a hint: it
    reports nothing (the fsync does), and where the call does not exist it
    does nothing.
    """
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def sync_dir(path: str) -> None:
    """Make a rename or a new entry in directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
