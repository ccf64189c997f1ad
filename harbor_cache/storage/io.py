"""Where blocking file work runs: a thread pool in production, inline in unit tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.internet import defer


class StorageIO(Protocol):
    def run(self, fn: Callable, *args) -> defer.Deferred: ...


class ThreadIO:
    """Runs blocking file work on a thread pool and reports back on the reactor."""

    def __init__(self, reactor, threadpool):
        self._reactor = reactor
        self._pool = threadpool

    def run(self, fn, *args):
        from twisted.internet.threads import deferToThreadPool

        return deferToThreadPool(self._reactor, self._pool, fn, *args)


class InlineIO:
    """Runs file work synchronously: for unit tests, where determinism beats speed."""

    def run(self, fn, *args):
        return defer.maybeDeferred(fn, *args)

