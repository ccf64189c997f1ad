"""``DATA/harbor-cache.lock``: one server on a data directory whose index is the sqlite file.

The sqlite index serves one server: a second one on the same directory
would empty the first's ``tmp/`` at its start and download what the first
is downloading.  A server is one process, or the parent of ``[server]
workers`` (`harbor_cache.supervisor`): the parent holds the lock, and its
workers inherit the descriptor (the lock stays held while any of them
lives); they tell each other apart by node name, as nodes do.  An exclusive ``flock`` held for the process's life keeps
it out; the kernel drops it when the holder dies, however it dies, so a
node restarted after a crash starts at once (a PostgreSQL index, shared by
hosts over a network file system where such locks are not to be trusted,
uses heartbeats in the index instead: `harbor_cache.core.operations.nodes`).
"""

from __future__ import annotations

import fcntl
import os

LOCK_NAME = "harbor-cache.lock"


class DataDirInUse(Exception):
    """Another live process serves this data directory with the sqlite index: do not start."""


class ProcessLock:
    """An exclusive, non-blocking ``flock`` on one file (one open, one syscall: start-up only)."""

    def __init__(self, data_dir: str):
        self.path = os.path.join(data_dir, LOCK_NAME)
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock; False when another process (or another open of this file) holds it."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    @property
    def fd(self) -> int | None:
        """The locked descriptor (handed to the workers), None when not held."""
        return self._fd

    def hold(self) -> None:
        """Take the lock, or raise `DataDirInUse` saying what to do."""
        if not self.acquire():
            raise DataDirInUse(
                f"another harbor-cache server serves {os.path.dirname(self.path)} with the sqlite index, which "
                "serves one server only (its [server] workers share it; several servers need a PostgreSQL index, "
                "each with its own [index] node_name)"
            )

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
