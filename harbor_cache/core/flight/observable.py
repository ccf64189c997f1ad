"""A result many waiters can observe without being able to cancel it.

Like Synapse's ObservableDeferred: each `observe` returns a fresh Deferred;
cancelling one (a client went away) detaches that waiter only, never the
shared work behind it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure


class Observable:
    def __init__(self) -> None:
        self._waiters: list[defer.Deferred] = []
        self._result: Any = None
        self._failure: Failure | None = None
        self.fired = False

    def observe(self) -> defer.Deferred:
        if self.fired:
            if self._failure is not None:
                return defer.fail(self._failure)
            return defer.succeed(self._result)
        d: defer.Deferred = defer.Deferred(lambda d: self._forget(d))
        self._waiters.append(d)
        return d

    def _forget(self, d: defer.Deferred) -> None:
        try:
            self._waiters.remove(d)
        except ValueError:
            pass

    def fire(self, result: Any) -> None:
        if self.fired:
            return
        self.fired = True
        self._result = result
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(result)

    def fail(self, error: BaseException | Failure) -> None:
        if self.fired:
            return
        self.fired = True
        self._failure = error if isinstance(error, Failure) else Failure(error)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.errback(self._failure)


class SingleFlight:
    """Run one piece of async work per key for any number of concurrent callers.

    The entry is registered before the work starts and dropped when it ends,
    success or failure (errors are never cached); a caller that goes away
    only stops observing.
    """

    def __init__(self) -> None:
        self._flights: dict[Hashable, Observable] = {}

    def __contains__(self, key: Hashable) -> bool:
        return key in self._flights

    async def run(self, key: Hashable, work: Callable[[], Awaitable[Any]]) -> Any:
        flight = self._flights.get(key)
        if flight is None:
            flight = self._flights[key] = Observable()

            async def _run() -> None:
                try:
                    flight.fire(await work())
                except BaseException as e:
                    flight.fail(e)
                finally:
                    self._flights.pop(key, None)

            defer.Deferred.fromCoroutine(_run())
        return await flight.observe()
