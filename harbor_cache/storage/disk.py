"""The low-level file calls behind durable writes, in one module so that fault
tests can replace them (``self.patch(disk, "sync_file", ...)``)."""

from __future__ import annotations

import os


def sync_file(fd: int) -> None:
    """Make the file's bytes durable (before it is renamed into the store)."""
    os.fsync(fd)


def sync_dir(path: str) -> None:
    """Make a rename or a new entry in directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]

