"""The parent of ``[server] workers = N``: one server, N processes on one port, one data directory and index.

The parent holds the data directory's lock (`storage.process_lock`: a
second server on the same directory is refused, the workers are its
children), binds the listening socket once, and starts each worker as
``python -m twisted harbor-cache`` with the same options, the socket as
file descriptor 3 (adopted with ``reactor.adoptStreamPort``), a pipe on
which it says "ready", and the lock's descriptor (so the lock stays held
while any worker lives).  It serves no request itself (docs/decisions.md:
why one socket handed to the children rather than SO_REUSEPORT).

Worker 0 starts alone (it migrates the index and creates the first admin);
the others start once it is ready.  A worker that exits while the server
runs is started again after a backoff (1 s, doubling up to 30 s, back to
1 s once a worker has run for a minute); a worker 0 that fails its very
first start fails the server's start (exit status 1), as a single process
would.  SIGTERM (or SIGINT) to the parent is passed to every worker, each
drains as a single server does, and the parent exits when all have; after
`KILL_AFTER_SECONDS` the stragglers get SIGKILL.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Callable
from typing import Any

from twisted.application import service
from twisted.internet import defer, protocol
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from harbor_cache.process import start_failed
from harbor_cache.settings.startup import Config, ConfigError
from harbor_cache.storage.process_lock import ProcessLock
from harbor_cache.workers import ENV_FAMILY, ENV_LISTEN_FD, ENV_PARENT, ENV_READY_FD, ENV_WORKER

log = Logger()

BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0
# A worker that ran this long before it exited is restarted after the first backoff step again.
STABLE_SECONDS = 60.0
# SIGKILL for the workers still running this long after the SIGTERM.
KILL_AFTER_SECONDS = 90.0

# The descriptors each worker gets (besides 0, 1 and 2, its parent's).
LISTEN_FD = 3
READY_FD = 4
LOCK_FD = 5


class Backoff:
    """The delay before a worker's next start: doubling per quick exit, reset by a long enough run."""

    def __init__(self, first: float = BACKOFF_FIRST_SECONDS, most: float = BACKOFF_MAX_SECONDS):
        self.first, self.most = first, most
        self.failures = 0

    def next_delay(self, ran_seconds: float) -> float:
        if ran_seconds >= STABLE_SECONDS:
            self.failures = 0
        delay = min(self.most, self.first * 2**self.failures)
        self.failures += 1
        return delay


class WorkerProtocol(protocol.ProcessProtocol):
    """One worker's pipe ("ready") and its end, reported to the `Supervisor`."""

    def __init__(self, supervisor: Supervisor, index: int):
        self.supervisor = supervisor
        self.index = index
        self._said = b""

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == READY_FD:
            self._said += data
            if b"ready\n" in self._said:
                self._said = b""
                self.supervisor.worker_ready(self.index)

    def processEnded(self, reason: Failure) -> None:
        self.supervisor.worker_exited(self.index, reason)


# (index, protocol) -> the started process's transport (``pid``, ``signalProcess``)
Spawn = Callable[[int, WorkerProtocol], Any]


class Supervisor(service.Service):
    """Starts ``count`` workers with ``spawn``, restarts those that exit, and stops them all on stop."""

    def __init__(self, count: int, spawn: Spawn, clock: IReactorTime, on_start_failed: Callable[[str], None]):
        self.count = count
        self.spawn = spawn
        self.clock = clock
        self.on_start_failed = on_start_failed
        self.processes: dict[int, Any] = {}
        self.started_at: dict[int, float] = {}
        self.backoff = {i: Backoff() for i in range(count)}
        self.restarts: dict[int, IDelayedCall] = {}
        self.ever_ready: set[int] = set()
        self.stopping = False
        self._all_exited: defer.Deferred | None = None
        self._kill: IDelayedCall | None = None

    def startService(self) -> None:
        super().startService()
        self._start(0)

    def _start(self, index: int) -> None:
        self.restarts.pop(index, None)
        if self.stopping:
            return
        self.started_at[index] = self.clock.seconds()
        self.processes[index] = self.spawn(index, WorkerProtocol(self, index))
        log.info("started worker {index} (pid {pid})", index=index, pid=self.processes[index].pid)

    def worker_ready(self, index: int) -> None:
        log.info("worker {index} ready", index=index)
        first = not self.ever_ready
        self.ever_ready.add(index)
        if index == 0 and first:  # worker 0 migrated the index and made the first admin: the rest may start
            for i in range(1, self.count):
                if i not in self.processes and i not in self.restarts:
                    self._start(i)

    def worker_exited(self, index: int, reason: Failure) -> None:
        process = self.processes.pop(index, None)
        pid = getattr(process, "pid", None)
        if self.stopping:
            log.info("worker {index} (pid {pid}) stopped", index=index, pid=pid)
            if not self.processes and self._all_exited is not None:
                d, self._all_exited = self._all_exited, None
                d.callback(None)
            return
        if not self.ever_ready:  # worker 0's first start failed: so does the server's (its log says why)
            self.on_start_failed(f"worker {index} exited before it was ready ({reason.value})")
            return
        ran = self.clock.seconds() - self.started_at.get(index, 0.0)
        delay = self.backoff[index].next_delay(ran)
        log.error(
            "worker {index} (pid {pid}) exited: {reason}; restarting it in {delay:g} s",
            index=index,
            pid=pid,
            reason=reason.value,
            delay=delay,
        )
        self.restarts[index] = self.clock.callLater(delay, self._start, index)

    def stopService(self) -> defer.Deferred | None:
        """SIGTERM to every worker; fires when all have exited (SIGKILL after `KILL_AFTER_SECONDS`)."""
        super().stopService()
        self.stopping = True
        for call in self.restarts.values():
            if call.active():
                call.cancel()
        self.restarts.clear()
        if not self.processes:
            return None
        self._all_exited = defer.Deferred()
        for index, process in list(self.processes.items()):
            self._signal(index, process, "TERM")
        self._kill = self.clock.callLater(KILL_AFTER_SECONDS, self._kill_all)
        d = self._all_exited
        d.addBoth(self._cancel_kill)
        return d

    def _cancel_kill(self, result):
        if self._kill is not None and self._kill.active():
            self._kill.cancel()
        return result

    def _kill_all(self) -> None:
        for index, process in list(self.processes.items()):
            log.warn("worker {index} still running {s:g} s after SIGTERM: SIGKILL", index=index, s=KILL_AFTER_SECONDS)
            self._signal(index, process, "KILL")

    @staticmethod
    def _signal(index: int, process: Any, name: str) -> None:
        try:
            process.signalProcess(name)
        except Exception as e:  # ProcessExitedAlready: its processEnded is on the way
            log.debug("worker {index}: {error}", index=index, error=e)


# -- the listening socket ---------------------------------------------------------------

_LISTEN = re.compile(r"^(tcp6?):(?:port=)?(\d+)((?::[a-z]+=[^:]*)*)$")


def listen_socket(listen: str) -> socket.socket:
    """Bind and listen on a ``tcp:PORT[:interface=ADDR][:backlog=N]`` (or ``tcp6:``) endpoint, non-blocking.

    Other endpoint types (ssl:, unix:) are refused with workers: TLS is
    terminated in front of the cache (docs/deployment.md).
    """
    match = _LISTEN.match(listen)
    if match is None:
        raise ConfigError(f'server.workers: needs a "tcp:PORT[:interface=ADDR]" listen endpoint, got {listen!r}')
    kind, port, rest = match.group(1), int(match.group(2)), match.group(3)
    options = dict(part.split("=", 1) for part in rest.split(":") if part)
    unknown = set(options) - {"interface", "backlog"}
    if unknown:
        raise ConfigError(f"server.listen: {sorted(unknown)[0]} is not supported with workers")
    family = socket.AF_INET6 if kind == "tcp6" else socket.AF_INET
    interface = options.get("interface", "::" if family == socket.AF_INET6 else "")
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((interface, port))
        sock.listen(int(options.get("backlog", 50)))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


# -- the parent's service ----------------------------------------------------------------


def worker_command(config: Config) -> list[str]:
    """The worker's command line: this server's options, spelled out (twist: no daemonizing, logs to stdout)."""
    command = [sys.executable, "-m", "twisted", "harbor-cache", "--listen", config.listen]
    command += ["--data-dir", os.path.abspath(config.data_dir)]
    if config.config_file:
        command += ["--config", config.config_file]
    return command


class ServerParent(service.MultiService):
    """Takes the data directory lock, binds the port, then runs the `Supervisor` (start failures end the process)."""

    def __init__(self, config: Config, reactor):
        super().__init__()
        self.config = config
        self.reactor = reactor
        self.lock = ProcessLock(os.path.abspath(config.data_dir))
        self.socket: socket.socket | None = None
        self.supervisor = Supervisor(config.workers, self.spawn, reactor, self._failed_message)
        self.supervisor.setServiceParent(self)

    def privilegedStartService(self):
        service.Service.privilegedStartService(self)

    def startService(self):
        try:
            os.makedirs(os.path.abspath(self.config.data_dir), exist_ok=True)
            self.lock.hold()
            self.socket = listen_socket(self.config.listen)
        except Exception:
            self._failed(Failure())
            return
        log.info(
            "harbor-cache: {count} workers on {listen}, data in {data_dir}",
            count=self.config.workers,
            listen=self.config.listen,
            data_dir=os.path.abspath(self.config.data_dir),
        )
        super().startService()

    def spawn(self, index: int, proto: WorkerProtocol):
        assert self.socket is not None and self.lock.fd is not None
        env = dict(os.environ)
        env.update(
            {
                ENV_WORKER: str(index),
                ENV_LISTEN_FD: str(LISTEN_FD),
                ENV_FAMILY: "inet6" if self.socket.family == socket.AF_INET6 else "inet",
                ENV_READY_FD: str(READY_FD),
                ENV_PARENT: str(os.getpid()),
            }
        )
        child_fds = {0: 0, 1: 1, 2: 2, LISTEN_FD: self.socket.fileno(), READY_FD: "r", LOCK_FD: self.lock.fd}
        command = worker_command(self.config)
        return self.reactor.spawnProcess(proto, command[0], command, env=env, childFDs=child_fds)

    def _failed_message(self, message: str) -> None:
        self._failed(Failure(RuntimeError(message)))

    def _failed(self, failure: Failure) -> None:
        start_failed(failure, self.reactor)

    def stopService(self):
        d = defer.maybeDeferred(super().stopService)

        def closed(result):
            if self.socket is not None:
                self.socket.close()
            self.lock.release()
            return result

        return d.addBoth(closed)
