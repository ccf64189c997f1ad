"""Where blocking file work runs: a thread pool in production (`ThreadIO`); unit tests run it inline
(`harbor_cache.testing.InlineIO`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.internet import defer


class StorageIO(Protocol):
    """Runs ``fn(*args)`` (blocking file work) off the reactor's call stack; a Deferred of its result."""

    def run(self, fn: Callable, *args) -> defer.Deferred: ...


class ThreadIO:
    """Runs blocking file work on a thread pool and reports back on the reactor."""

    def __init__(self, reactor, threadpool):
        self._reactor = reactor
        self._pool = threadpool

    def run(self, fn, *args):
        from twisted.internet.threads import deferToThreadPool

        return deferToThreadPool(self._reactor, self._pool, fn, *args)
