"""What the process does around the app: how a refused or failed start ends, and quiet timer failures.

Kept apart from `harbor_cache.service` (which wires the object graph) so
that module stays about wiring.
"""

from __future__ import annotations

import os
import sys

from twisted.logger import Logger
from twisted.python.failure import Failure

from harbor_cache.core.operations.nodes import NodeNameInUse
from harbor_cache.errors import IndexUnavailable
from harbor_cache.settings.startup import ConfigError
from harbor_cache.storage.process_lock import DataDirInUse

log = Logger()

# The exit status of a process that could not start (its node name or data directory in use, no index).
START_FAILED_STATUS = 1


def logged(what: str):
    """An errback for a timer's pass: log the failure, except the index being away (the index logs that once)."""

    def errback(failure: Failure) -> None:
        if not failure.check(IndexUnavailable):
            log.failure(what, failure)

    return errback


def start_failed(failure: Failure, reactor) -> None:
    """Log why the start failed (one line for a refusal, a traceback otherwise) and exit with status 1.

    twist exits 0 whenever its reactor stops, so the status is set by ending
    the process once the reactor has shut down (services stopped, logs out).
    A start can fail before the reactor runs (a sqlite data directory in use
    fails at once): the reactor is then stopped as soon as it runs.
    """
    if failure.check(NodeNameInUse, DataDirInUse):
        log.critical("harbor-cache refuses to start: {reason}", reason=str(failure.value))
    elif failure.check(ConfigError):  # e.g. the file's upstreams clash with the API's: its message says it all
        log.error("harbor-cache failed to start: {error}", error=failure.value)
    else:
        log.failure("harbor-cache failed to start", failure)

    def stop():
        reactor.addSystemEventTrigger("after", "shutdown", _exit, START_FAILED_STATUS)
        reactor.stop()

    reactor.callWhenRunning(stop)


def _exit(status: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
