"""Leases: work that only one node of several may do at a time, held in the shared index.

Several nodes share one data directory and one PostgreSQL index. A cold
blob asked for on two nodes at once must be fetched from upstream once, and
eviction must not run on two nodes at once. Each such piece of work takes a
lease (a row in the index: name, holder node, expiry). The holder renews it
every third of its lifetime while it works and deletes it when done; if the
holder dies (SIGKILL, power loss), its lease simply expires and the next
node that asks takes it over, so a dead node blocks others for at most one
lease lifetime (``[index] lease_seconds``).

One node alone (the sqlite index) needs none of this: its in-process
single-flight already covers it, and `Downloads` is then built without a
lease book.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer, task
from twisted.logger import Logger

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from harbor_cache.index import Index

log = Logger()

DEFAULT_LEASE_SECONDS = 30.0
# How often a node waiting for another node's download looks again.
DEFAULT_POLL_SECONDS = 0.25


class Lease:
    """A lease this node holds; `release` ends it (renewal stops)."""

    def __init__(self, book: LeaseBook, name: str):
        self.book = book
        self.name = name
        self.lost = False
        self._renewal = task.LoopingCall(self._renew)
        self._renewal.clock = book.clock

    def _start(self) -> None:
        self._renewal.start(self.book.ttl / 3, now=False).addErrback(
            lambda f: log.failure("renewing lease {name} failed", f, name=self.name)
        )

    async def _renew_async(self) -> None:
        try:
            held = await self.book.index.renew_lease(
                self.name, self.book.node, self.book.clock.seconds(), self.book.ttl
            )
        except Exception as e:  # the database may be briefly away: keep working, try again next time
            log.warn("could not renew lease {name}: {error}", name=self.name, error=e)
            return
        if not held and not self.lost:
            self.lost = True
            log.warn("lease {name} was taken over by another node (this one was too slow to renew it)", name=self.name)

    def _renew(self) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._renew_async())

    async def release(self) -> None:
        if self._renewal.running:
            self._renewal.stop()
        try:
            await self.book.index.release_lease(self.name, self.book.node)
        except Exception as e:  # it expires on its own
            log.warn("could not release lease {name}: {error}", name=self.name, error=e)


class LeaseBook:
    """Takes, renews, waits for and releases leases of one node."""

    def __init__(
        self,
        index: Index,
        node: str,
        clock: IReactorTime,
        ttl: float = DEFAULT_LEASE_SECONDS,
        poll: float = DEFAULT_POLL_SECONDS,
    ) -> None:
        self.index = index
        self.node = node
        self.clock = clock
        self.ttl = ttl
        self.poll = poll

    async def try_hold(self, name: str) -> Lease | None:
        """The lease when it is free (or expired, or already ours), else None; it is renewed until released."""
        if not await self.index.acquire_lease(name, self.node, self.clock.seconds(), self.ttl):
            return None
        lease = Lease(self, name)
        lease._start()
        return lease

    async def hold_or_adopt(self, name: str, adopt: Callable[[], Awaitable[Any]]) -> tuple[Lease | None, Any]:
        """Wait until either this node holds ``name`` or ``adopt()`` finds the work done elsewhere.

        Returns ``(lease, None)`` when this node must do the work, ``(None,
        result)`` when another node did it (``adopt`` returned a result that
        is not None).  ``adopt`` is also asked right after the lease is taken:
        the other node may have finished between the caller's own check and
        the lease, and the work is then not done twice.
        """
        while True:
            lease = await self.try_hold(name)
            try:
                done = await adopt()
            except BaseException:
                if lease is not None:
                    await lease.release()
                raise
            if done is not None:
                if lease is not None:
                    await lease.release()
                return None, done
            if lease is not None:
                return lease, None
            await task.deferLater(self.clock, self.poll, lambda: None)
