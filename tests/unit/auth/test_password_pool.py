"""Point 17: bcrypt runs on its own bounded pool, so a burst of password checks never starves shared I/O threads."""

from __future__ import annotations

import threading

from twisted.internet import defer, reactor, threads
from twisted.trial.unittest import TestCase

from harbor_cache.auth import password_pool, passwords


class PasswordPoolTests(TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def test_burst_of_checks_leaves_the_shared_pool_free(self):
        """30 password checks stuck in bcrypt: the reactor's pool (DNS, I/O helpers) still runs a job at once,
        and no more than PASSWORD_THREADS checks run at a time."""
        release = threading.Event()
        running = []
        peak = []
        lock = threading.Lock()

        def slow_check(password, hashed, rounds):
            with lock:
                running.append(1)
                peak.append(len(running))
            release.wait(20)
            with lock:
                running.pop()
            return False

        self.patch(passwords, "_check_blocking", slow_check)
        checks = [defer.ensureDeferred(passwords.check_password("wrong", None)) for _ in range(30)]
        try:
            # A job on the shared pool answers although every bcrypt thread is busy.
            answer = yield threads.deferToThreadPool(reactor, reactor.getThreadPool(), lambda: "resolved")
            self.assertEqual(answer, "resolved")
        finally:
            release.set()
        results = yield defer.gatherResults(checks)
        self.assertEqual(results, [False] * 30)
        self.assertLessEqual(max(peak), password_pool.PASSWORD_THREADS)
        self.assertIsNot(password_pool.password_pool(), reactor.getThreadPool())
