"""``[server] workers``: the count, the parent's supervisor (start order, restart with backoff, signal fan-out),
the listening socket it hands over, and what a worker is (node name, leases, no lock, timers on worker 0)."""

from __future__ import annotations

import os
import socket

from twisted.internet import protocol, tcp
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache import daemon
from harbor_cache.daemon import make_service
from harbor_cache.settings.processes import parse_workers
from harbor_cache.settings.startup import Config, ConfigError, parse_config
from harbor_cache.supervisor import (
    KILL_AFTER_SECONDS,
    Backoff,
    ServerParent,
    Supervisor,
    listen_socket,
    worker_command,
)
from harbor_cache.testing import build_app
from harbor_cache.workers import ENV_WORKER, WorkerRole, one_accept_per_wake


class WorkerCountTests(SynchronousTestCase):
    def test_default_is_one(self):
        self.assertEqual(parse_config({}).workers, 1)
        self.assertEqual(Config().workers, 1)

    def test_number_and_auto(self):
        self.assertEqual(parse_config({"server": {"workers": 4}}).workers, 4)
        self.assertEqual(parse_workers("auto", cpu_count=lambda: 16), 16)
        self.assertEqual(parse_workers("auto", cpu_count=lambda: None), 1)
        self.assertEqual(parse_workers("auto", cpu_count=lambda: 1000), 256)
        self.assertEqual(parse_config({"server": {"workers": "auto"}}).workers, os.cpu_count() or 1)

    def test_bad_values_are_refused(self):
        for value in (0, -1, 257, "all", 2.0, True, None):
            e = self.assertRaises(ConfigError, parse_config, {"server": {"workers": value}})
            self.assertIn("server.workers", str(e))


class FakeProcess:
    """What `Supervisor` uses of a process transport: ``pid`` and ``signalProcess``."""

    def __init__(self, pid: int, proto):
        self.pid = pid
        self.proto = proto
        self.signals: list[str] = []
        self.ended = False

    def signalProcess(self, name: str) -> None:
        self.signals.append(name)

    def ready(self) -> None:
        self.proto.childDataReceived(4, b"rea")
        self.proto.childDataReceived(4, b"dy\n")

    def end(self, status: int = 0) -> None:
        self.ended = True
        reason = ProcessDone(0) if status == 0 else ProcessTerminated(exitCode=status)
        self.proto.processEnded(Failure(reason))


class SupervisorTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.spawned: list[tuple[int, FakeProcess]] = []
        self.failures: list[str] = []
        self.supervisor = Supervisor(3, self.spawn, self.clock, self.failures.append)

    def spawn(self, index, proto):
        process = FakeProcess(1000 + len(self.spawned), proto)
        self.spawned.append((index, process))
        return process

    def process(self, index: int) -> FakeProcess:
        return self.supervisor.processes[index]

    def start_all(self) -> None:
        self.supervisor.startService()
        self.process(0).ready()
        for i in (1, 2):
            self.process(i).ready()

    def test_worker_zero_starts_alone_then_the_others(self):
        """Worker 0 migrates the index and makes the first admin: the others wait for its "ready"."""
        self.supervisor.startService()
        self.assertEqual([i for i, _ in self.spawned], [0])
        self.process(0).ready()
        self.assertEqual([i for i, _ in self.spawned], [0, 1, 2])
        self.process(1).ready()
        self.assertEqual(len(self.spawned), 3, "a later ready starts nothing more")

    def test_a_first_start_that_fails_fails_the_server(self):
        self.supervisor.startService()
        self.process(0).end(1)
        self.assertEqual(len(self.failures), 1)
        self.assertIn("worker 0 exited before it was ready", self.failures[0])
        self.assertEqual(self.clock.getDelayedCalls(), [], "no restart")

    def test_a_crashed_worker_is_restarted_with_backoff(self):
        self.start_all()
        self.clock.advance(5)
        delays = []
        for _ in range(7):
            self.process(1).end(1)
            self.assertNotIn(1, self.supervisor.processes)
            (call,) = self.clock.getDelayedCalls()
            delays.append(call.getTime() - self.clock.seconds())
            self.clock.advance(delays[-1])
            self.assertIn(1, self.supervisor.processes)
        self.assertEqual(delays, [1, 2, 4, 8, 16, 30, 30])
        self.clock.advance(60)  # ran a minute: the next crash is restarted after the first step again
        self.process(1).end(1)
        (call,) = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime() - self.clock.seconds(), 1)
        self.assertEqual(self.failures, [])
        self.assertEqual(sorted(self.supervisor.processes), [0, 2])

    def test_restarted_worker_zero_does_not_start_the_others_again(self):
        self.start_all()
        self.process(0).end(1)
        self.clock.advance(1)
        self.process(0).ready()
        self.assertEqual([i for i, _ in self.spawned], [0, 1, 2, 0])

    def test_stop_sends_sigterm_to_all_and_waits_for_every_exit(self):
        self.start_all()
        processes = [self.process(i) for i in range(3)]
        d = self.supervisor.stopService()
        self.assertEqual([p.signals for p in processes], [["TERM"]] * 3)
        processes[0].end()
        processes[2].end()
        self.assertNoResult(d)
        processes[1].end()
        self.successResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [], "the SIGKILL timer is cancelled")
        self.assertEqual(len(self.spawned), 3, "nothing restarted while stopping")

    def test_stop_kills_stragglers(self):
        self.start_all()
        d = self.supervisor.stopService()
        self.process(0).end()
        self.clock.advance(KILL_AFTER_SECONDS)
        self.assertEqual(self.process(1).signals, ["TERM", "KILL"])
        self.process(1).end(-9)
        self.process(2).end(-9)
        self.successResultOf(d)

    def test_stop_cancels_a_pending_restart(self):
        self.start_all()
        self.process(2).end(1)
        d = self.supervisor.stopService()
        for i in (0, 1):
            self.process(i).end()
        self.successResultOf(d)
        self.clock.advance(100)
        self.assertEqual(len(self.spawned), 3)

    def test_backoff_steps(self):
        backoff = Backoff()
        self.assertEqual([backoff.next_delay(0) for _ in range(7)], [1, 2, 4, 8, 16, 30, 30])
        self.assertEqual(backoff.next_delay(3600), 1)


class ListenSocketTests(SynchronousTestCase):
    def test_tcp_with_interface(self):
        sock = listen_socket("tcp:0:interface=127.0.0.1")
        self.addCleanup(sock.close)
        self.assertEqual(sock.getsockname()[0], "127.0.0.1")
        self.assertFalse(sock.getblocking())
        self.assertEqual(sock.family, socket.AF_INET)

    def test_other_endpoints_are_refused(self):
        for listen in ("unix:/tmp/x.sock", "ssl:443:privateKey=k.pem", "tcp:5001:reuse=yes"):
            self.assertRaises(ConfigError, listen_socket, listen)

    def test_worker_command_spells_out_the_options(self):
        config = Config(listen="tcp:5001", data_dir="d", config_file="/etc/h.toml")
        command = worker_command(config)
        self.assertEqual(command[1:4], ["-m", "twisted", "harbor-cache"])
        self.assertEqual(
            command[4:], ["--listen", "tcp:5001", "--data-dir", os.path.abspath("d"), "--config", "/etc/h.toml"]
        )


class WorkerWiringTests(SynchronousTestCase):
    def test_worker_is_a_node_with_leases_and_no_lock(self):
        app = build_app(self.mktemp(), node_name="box", worker=1)
        self.assertEqual(app.node_name, "box-w1")
        self.assertTrue(app.shared_index)
        self.assertIsNotNone(app.leases)
        self.assertIsNone(app.process_lock, "the parent holds the data directory lock")
        self.assertIsNone(app.node, "no node-name heartbeat: the lock already makes the names unique")
        self.assertTrue(app.storage.tmp_dir.endswith(os.path.join("tmp", "box-w1")))

    def test_single_server_keeps_the_lock(self):
        app = build_app(self.mktemp())
        self.assertIsNotNone(app.process_lock)
        self.assertIsNone(app.leases)

    def test_more_than_one_worker_makes_the_parent(self):
        config = Config(listen="tcp:0:interface=127.0.0.1", data_dir=self.mktemp(), workers=2)
        self.assertNotIn(ENV_WORKER, os.environ)
        self.assertIsInstance(make_service(config), ServerParent)

    def timers(self, index: int) -> set[str]:
        data_dir = os.path.abspath(self.mktemp())
        config = Config(
            listen="tcp:0", data_dir=data_dir, upstreams=(), maven_repositories=(), access_log_file=None, workers=2
        )
        self.patch(os, "getppid", lambda: 1)
        role = WorkerRole(index=index, listen_fd=3, family=socket.AF_INET, ready_fd=4, parent=1)
        self.patch(daemon, "die_with_parent", lambda parent: None)
        top = make_service(config, worker=role)
        app = getattr(top, "harbor")  # noqa: B009  (set by make_service, not declared)
        self.addCleanup(app.db_pool.close)
        state = [c for c in top if type(c).__name__ == "HarborState"][0]
        names = {c.name for c in state if c.name}
        self.assertEqual(app.worker, index)
        self.assertEqual(type(state.getServiceNamed("web")).__name__, "AdoptedPort")
        self.assertEqual(type(list(state)[-1]).__name__, "ReadySignal")
        return names

    def test_only_worker_zero_runs_the_once_per_directory_timers(self):
        once = {"eviction", "gc", "audit-prune", "retention", "sync", "upload-expiry"}
        self.assertLessEqual(once, self.timers(0))
        self.assertEqual(once & self.timers(1), set())
        self.assertLessEqual({"access-flush", "history-flush", "cache-gauges", "settings-poll"}, self.timers(1))


class OneAcceptTests(SynchronousTestCase):
    def test_a_port_accepts_one_connection_per_wake(self):
        """Twisted's accept loop would let one worker take a burst of connections (all 16 of wrk's)."""
        port = tcp.Port(0, protocol.ServerFactory())
        port.numberAccepts = 100  # what startListening sets
        one_accept_per_wake(port)
        self.assertIsInstance(port, tcp.Port)
        port.numberAccepts = 121  # what doRead does after a full loop
        self.assertEqual(port.numberAccepts, 1)
