"""The data directory and the index hold secrets: only the server's user may read them.

``index.sqlite`` holds bcrypt hashes, the directory the token secrets and the
first admin's password. Created private (0700 / 0600) on first start, and
tightened on every start when an older version (or an operator's umask) left
them readable by others.
"""

from __future__ import annotations

import os
import stat

from twisted.logger import Logger

log = Logger()

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def _tighten(path: str, mode: int) -> None:
    current = stat.S_IMODE(os.stat(path).st_mode)
    if current & 0o077:
        os.chmod(path, mode)
        log.warn("{path} was accessible to others (mode {old:o}); set to {new:o}", path=path, old=current, new=mode)


def make_private_dir(path: str) -> None:
    """Create ``path`` (and parents) as 0700, or tighten an existing one to 0700."""
    os.makedirs(path, mode=PRIVATE_DIR_MODE, exist_ok=True)
    _tighten(path, PRIVATE_DIR_MODE)


def make_private_file(path: str) -> None:
    """Create an empty ``path`` as 0600 unless it exists; tighten it and its SQLite companions to 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE)
    os.close(fd)
    for candidate in (path, path + "-wal", path + "-shm", path + "-journal"):
        if os.path.exists(candidate):
            _tighten(candidate, PRIVATE_FILE_MODE)
