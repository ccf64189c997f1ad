"""The worker side of ``[server] workers``: who this process is, the port it was handed, "ready" to its parent.

`harbor_cache.supervisor` (the parent) binds the listening socket once and
starts each worker as ``python -m twisted harbor-cache`` with the same
options, the socket as a file descriptor and these variables in its
environment.  A worker serves like a single server, but for: its node name
``<node>-w<i>`` (its temp directory and lease holder name), leases between
workers as between nodes (one upstream GET for a key over all workers), no
data directory lock (the parent holds it for all of them), its own access
log file (``access-w<i>.log``), and, unless it is worker 0, none of the
timers that must run once per data directory (eviction and the orphan sweep,
GC, retention, sync, audit pruning, upload expiry).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from twisted.application import service
from twisted.logger import Logger

log = Logger()

# The environment the parent gives each worker.
ENV_WORKER = "HARBOR_CACHE_WORKER"  # its number, 0..N-1
ENV_LISTEN_FD = "HARBOR_CACHE_WORKER_LISTEN_FD"  # the listening socket
ENV_FAMILY = "HARBOR_CACHE_WORKER_FAMILY"  # "inet" or "inet6"
ENV_READY_FD = "HARBOR_CACHE_WORKER_READY_FD"  # a pipe: "ready\n" once the worker serves
ENV_PARENT = "HARBOR_CACHE_WORKER_PARENT"  # the parent's pid (a worker whose parent is gone exits)

FAMILIES = {"inet": socket.AF_INET, "inet6": socket.AF_INET6}

# prctl(2): deliver a signal to this process when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class WorkerRole:
    """This process is worker ``index``; ``listen_fd`` is the shared socket, ``ready_fd`` the pipe to the parent."""

    index: int
    listen_fd: int
    family: int
    ready_fd: int
    parent: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> WorkerRole | None:
        """The role the parent gave this process, or None: this process is a server of its own (or the parent)."""
        if ENV_WORKER not in environ:
            return None
        return cls(
            index=int(environ[ENV_WORKER]),
            listen_fd=int(environ[ENV_LISTEN_FD]),
            family=FAMILIES[environ[ENV_FAMILY]],
            ready_fd=int(environ[ENV_READY_FD]),
            parent=int(environ[ENV_PARENT]),
        )

    @property
    def runs_timers(self) -> bool:
        """Worker 0 runs the once-per-data-directory timers (eviction, GC, sync, ...)."""
        return self.index == 0


def die_with_parent(parent: int) -> None:
    """SIGTERM this worker when its parent dies (however it dies), so no worker outlives its server.

    Linux only (elsewhere a worker notices nothing and serves on until it is
    stopped).  A parent already gone before the call: exit at once.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


class AdoptedPort(service.Service):
    """Serves ``factory`` on the listening socket the parent handed over (instead of an endpoint)."""

    def __init__(self, reactor, role: WorkerRole, factory):
        self.reactor = reactor
        self.role = role
        self.factory = factory
        self.port = None

    def startService(self):
        super().startService()
        self.port = one_accept_per_wake(
            self.reactor.adoptStreamPort(self.role.listen_fd, self.role.family, self.factory)
        )

    def stopService(self):
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()
        return None


def one_accept_per_wake(port):
    """Make a Twisted port accept one connection each time its socket is readable (nginx's ``multi_accept off``).

    Twisted's port accepts in a loop until the queue is empty (up to 100 and
    more): with one socket shared by the workers, whichever wakes first would
    take a whole burst of connections (wrk's 16 at once) and the others none.
    One accept per wake lets every worker that is waiting take its turn, and
    a busy worker, slower to come back to its loop, takes fewer.
    """
    cls = type(port)
    single = type("OneAccept" + cls.__name__, (cls,), {"numberAccepts": property(lambda self: 1, lambda self, n: None)})
    port.__class__ = single
    return port


class ReadySignal(service.Service):
    """Started last: writes "ready" to the parent (which then starts the other workers) and closes the pipe."""

    def __init__(self, role: WorkerRole):
        self.role = role

    def startService(self):
        super().startService()
        try:
            os.write(self.role.ready_fd, b"ready\n")
            os.close(self.role.ready_fd)
        except OSError as e:
            log.warn("could not tell the parent this worker is ready: {error}", error=e)
