"""Where blocking file work runs: a thread pool in production (`ThreadIO`); unit tests run it inline
(`harbor_cache.testing.InlineIO`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet import defer
from twisted.internet.interfaces import IReactorFromThreads
from twisted.python.threadpool import ThreadPool


class StorageIO(Protocol):
    """Runs ``fn(*args)`` (blocking file work) off the reactor's call stack; a Deferred of its result."""

    def run(self, fn: Callable[..., Any], *args: Any) -> defer.Deferred[Any]: ...


class ThreadIO:
    """Runs blocking file work on a thread pool and reports back on the reactor."""

    def __init__(self, reactor: IReactorFromThreads, threadpool: ThreadPool) -> None:
        self._reactor = reactor
        self._pool = threadpool

    def run(self, fn: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        from twisted.internet.threads import deferToThreadPool

        return deferToThreadPool(self._reactor, self._pool, fn, *args)
