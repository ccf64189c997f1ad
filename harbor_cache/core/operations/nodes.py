"""One node name, one live process: the name is held in the index and refreshed on a timer.

Several processes on one data directory tell each other apart by ``[index]
node_name`` alone: its temp directory ``tmp/<node>/`` (a starting node
empties it) and its leases (a lease "already ours" is taken again).  Two
live processes under one name (two on one host, both with the default, the
host name) therefore delete each other's downloads in progress and both
fetch the same blob.  So a starting process claims its name in the index
(table ``nodes``) with a random instance id, and refreshes the claim's
heartbeat every third of ``lease_seconds``; a clean stop gives it up.

A name whose holder has not refreshed it for ``lease_seconds`` is taken over
(the holder died).  A name refreshed more recently may belong to a live
process, or to this process's previous life killed a moment ago: the
starting process watches the heartbeat, refuses to start (`NodeNameInUse`)
as soon as it sees it refreshed, and takes the name over once it is stale -
so a crashed node restarted at once waits at most ``lease_seconds``, and a
clash is reported within about a third of that.  Only whether the heartbeat
moves is compared, never two hosts' clocks, except for the staleness test
(like every lease).

With the sqlite index (one process only, on one host) a lock on the data
directory does this instead (`harbor_cache.storage.process_lock`): the
kernel drops it when its holder dies, so a crashed node restarts at once.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from harbor_cache.errors import IndexUnavailable

if TYPE_CHECKING:
    from harbor_cache.index import Index

log = Logger()


class NodeNameInUse(Exception):
    """Another live process holds this node name: this one must not start."""


class NodeName:
    """Claims, refreshes and releases this process's node name (``index``: the `Index`)."""

    def __init__(
        self,
        index: Index,
        name: str,
        clock: IReactorTime,
        lease_seconds: float,
        *,
        instance: str | None = None,
    ) -> None:
        self.index = index
        self.name = name
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.instance = instance or secrets.token_hex(8)
        self.taken_over = False
        self._heartbeat = task.LoopingCall(self._beat)
        self._heartbeat.clock = clock
        self._held = False

    @property
    def interval(self) -> float:
        """How often the holder refreshes its heartbeat."""
        return self.lease_seconds / 3

    async def claim(self) -> None:
        """Hold the name (waiting out a fresh heartbeat that never moves), then keep it refreshed.

        Raises `NodeNameInUse` when another process refreshes the name meanwhile.
        """
        now = self.clock.seconds()
        row = await self.index.claim_node(self.name, self.instance, now, now - self.lease_seconds)
        if row.instance != self.instance:
            seen = (row.instance, row.heartbeat_at)
            log.warn(
                "node name {name} was refreshed {age:.1f} s ago by another process; watching it for up to "
                "{lease} s ([index] lease_seconds) to tell a live process from a dead one",
                name=self.name,
                age=max(0.0, now - row.heartbeat_at),
                lease=self.lease_seconds,
            )
            while row.instance != self.instance:
                if (row.instance, row.heartbeat_at) != seen:
                    raise NodeNameInUse(self._clash_message(row.instance))
                await task.deferLater(self.clock, self.interval / 2, lambda: None)
                now = self.clock.seconds()
                row = await self.index.claim_node(self.name, self.instance, now, now - self.lease_seconds)
            log.info("node name {name} taken over from a process that stopped refreshing it", name=self.name)
        self._held = True
        self._heartbeat.start(self.interval, now=False).addErrback(
            lambda f: log.failure("node name heartbeat stopped", f)
        )

    def _clash_message(self, holder: str) -> str:
        return (
            f"node name {self.name!r} is held by another live harbor-cache process (instance {holder}); "
            "give each process its own [index] node_name"
        )

    async def _beat_async(self) -> None:
        try:
            held = await self.index.node_heartbeat(self.name, self.instance, self.clock.seconds())
        except IndexUnavailable:
            return  # logged once by the index; the next beat tries again
        except Exception as e:
            log.warn("could not refresh node name {name}: {error}", name=self.name, error=e)
            return
        if not held and not self.taken_over:
            self.taken_over = True
            log.error(
                "node name {name} was taken over by another process while this one could not refresh it; "
                "two processes now share tmp/{name}/ and its leases: stop one of them",
                name=self.name,
            )

    def _beat(self) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._beat_async())

    async def release(self) -> None:
        """Stop refreshing and give the name up (a clean stop), so a restart under it starts at once."""
        if self._heartbeat.running:
            self._heartbeat.stop()
        if not self._held:
            return
        self._held = False
        try:
            await self.index.release_node(self.name, self.instance)
        except Exception as e:  # it goes stale on its own
            log.warn("could not release node name {name}: {error}", name=self.name, error=e)
