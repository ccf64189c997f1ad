"""The sqlite index's one process per data directory: an exclusive flock, dropped when its holder goes."""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.storage import process_lock
from harbor_cache.storage.process_lock import LOCK_NAME, ProcessLock


class ProcessLockTests(SynchronousTestCase):
    def setUp(self):
        self.dir = self.mktemp()
        os.makedirs(self.dir)

    def test_a_second_holder_is_refused_until_the_first_releases(self):
        first, second = ProcessLock(self.dir), ProcessLock(self.dir)
        self.assertTrue(first.acquire())
        self.assertTrue(first.acquire())  # again: still ours
        self.assertFalse(second.acquire())
        first.release()
        self.assertTrue(second.acquire())
        second.release()
        self.assertEqual(os.stat(os.path.join(self.dir, LOCK_NAME)).st_mode & 0o777, 0o600)

    def test_a_dead_holders_lock_is_free_at_once(self):
        """A process that held it and exited without releasing (a crash) leaves nothing to wait for."""
        code = (
            "import sys; from harbor_cache.storage.process_lock import ProcessLock;"
            "assert ProcessLock(sys.argv[1]).acquire(); import os; os._exit(0)"
        )
        root = os.path.dirname(os.path.dirname(os.path.abspath(process_lock.__file__)))
        env = dict(os.environ, PYTHONPATH=os.path.dirname(root))
        subprocess.run([sys.executable, "-c", code, os.path.abspath(self.dir)], check=True, env=env)
        lock = ProcessLock(self.dir)
        self.assertTrue(lock.acquire())
        lock.release()
