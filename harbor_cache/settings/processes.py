"""Start-up settings about processes and their files: ``[log]`` (where access lines go) and ``[server] workers``.

Kept apart from `startup` so the defaults the access log file and the
worker supervisor use are named once, here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

#: where access lines go without ``[log] access_file`` (relative to the data directory)
DEFAULT_ACCESS_FILE = "logs/access.log"
#: ``[log] access_file`` value that sends access lines to the main log (twisted.logger), as before issue 30
MAIN_LOG = "-"
#: ``[log] access_max_bytes`` default: the file is rotated when a write takes it past this (0: never)
DEFAULT_ACCESS_MAX_BYTES = 100 * 1024 * 1024
#: ``[log] access_keep`` default: how many rotated files (``.1`` newest) are kept
DEFAULT_ACCESS_KEEP = 5
MAX_ACCESS_KEEP = 1000
#: ``[server] workers`` upper bound (a typo like 1000 should not fork a thousand processes)
MAX_WORKERS = 256


class ProcessConfigError(ValueError):
    """A ``[log]`` or ``workers`` value that cannot work (the message names the key)."""


def _int(table: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ProcessConfigError(f"log.{key}: expected an integer from {low} to {high}, got {value!r}")
    return value


def parse_log(table: Any) -> dict[str, Any]:
    """``[log]``: the Config fields ``access_log_file`` (None: the main log), ``access_max_bytes``, ``access_keep``."""
    if not isinstance(table, dict):
        raise ProcessConfigError("[log] must be a table")
    path = table.get("access_file", DEFAULT_ACCESS_FILE)
    if not isinstance(path, str) or not path.strip() or "\0" in path:
        raise ProcessConfigError(f"log.access_file: expected a file path or {MAIN_LOG!r}, got {path!r}")
    return {
        "access_log_file": None if path == MAIN_LOG else path,
        "access_max_bytes": _int(table, "access_max_bytes", DEFAULT_ACCESS_MAX_BYTES, 0, 2**50),
        "access_keep": _int(table, "access_keep", DEFAULT_ACCESS_KEEP, 1, MAX_ACCESS_KEEP),
    }


def parse_workers(value: Any, cpu_count: Callable[[], int | None] = os.cpu_count) -> int:
    """``[server] workers``: an integer 1..MAX_WORKERS, or ``"auto"``: one per core (``os.cpu_count()``)."""
    if value == "auto":
        return max(1, min(cpu_count() or 1, MAX_WORKERS))
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_WORKERS:
        raise ProcessConfigError(
            f'server.workers: expected an integer from 1 to {MAX_WORKERS} or "auto", got {value!r}'
        )
    return value
