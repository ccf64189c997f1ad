"""Start-up order and what the data directory looks like: points 2 and 4 of the security issue.

These run the real service (real reactor, real SQLite pool) on a loopback
port from the OS, because what they check is the wiring in make_service.
"""

from __future__ import annotations

import os
import stat

from twisted.internet import defer, reactor
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from harbor_cache.auth import passwords
from harbor_cache.daemon import make_service
from harbor_cache.settings.startup import Config


class StartupTests(TestCase):
    def setUp(self):
        self.patch(passwords, "BCRYPT_ROUNDS", 4)
        self.data_dir = os.path.abspath(self.mktemp())
        self.config = Config(
            listen="tcp:0:interface=127.0.0.1", data_dir=self.data_dir, upstreams=(), maven_repositories=()
        )
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def start(self):
        top = make_service(self.config, reactor)
        self.addCleanup(lambda: top.running and top.stopService())
        return top

    @defer.inlineCallbacks
    def test_port_opens_only_after_state_is_ready(self):
        """twistd's privileged start does not open the port; it opens after settings and the admin exist."""
        top = self.start()
        web = _web(top)
        top.privilegedStartService()
        self.assertIsNone(web._waitingForPort, "port opened before the state was loaded")
        top.startService()
        state = _state(top)
        yield state.ready
        self.assertIsNotNone(web._waitingForPort)
        self.assertTrue(web._waitingForPort.called)
        self.assertTrue(web._waitingForPort.result.getHost().port)
        self.assertEqual((yield defer.Deferred.fromCoroutine(top.harbor.index.count_users())), 1)
        yield top.stopService()

    @defer.inlineCallbacks
    def test_data_dir_and_index_are_private_and_password_not_logged(self):
        """0700 data dir, 0600 index.sqlite, tightened when looser; the log names the file, not the password."""
        os.makedirs(self.data_dir, mode=0o755)
        os.chmod(self.data_dir, 0o755)
        top = self.start()
        top.startService()
        yield _state(top).ready
        self.assertEqual(stat.S_IMODE(os.stat(self.data_dir).st_mode), 0o700)
        index_path = os.path.join(self.data_dir, "index.sqlite")
        self.assertEqual(stat.S_IMODE(os.stat(index_path).st_mode), 0o600)
        for companion in ("-wal", "-shm"):
            if os.path.exists(index_path + companion):
                self.assertEqual(stat.S_IMODE(os.stat(index_path + companion).st_mode) & 0o077, 0)
        with open(os.path.join(self.data_dir, "admin-password")) as f:
            password = f.read().strip()
        from twisted.logger import formatEvent

        logged = "\n".join(formatEvent(e) for e in self.events)
        self.assertIn("admin-password", logged)
        self.assertNotIn(password, logged)
        yield top.stopService()
        # An index left 0644 by an older version is tightened at the next start.
        os.chmod(index_path, 0o644)
        top = self.start()
        top.startService()
        yield _state(top).ready
        self.assertEqual(stat.S_IMODE(os.stat(index_path).st_mode), 0o600)


def _state(top):
    from harbor_cache.daemon import HarborState

    return next(s for s in top if isinstance(s, HarborState))


def _web(top):
    return _state(top).getServiceNamed("web")
