"""The sqlite index serves one process: a second harbor-cache on the same data directory refuses to start.

Real processes (``twist``) on one data directory with the default (sqlite)
index and the default node name.  The second exits non-zero with one line
saying why, and leaves the first's temp files alone; after the first is
SIGKILLed, a new process starts at once (the kernel dropped the lock) and
cleans what the dead one left.  The PostgreSQL case, where processes are
told apart by ``[index] node_name``, is in `test_scaleout_it`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import support


class SingleProcessTests(SynchronousTestCase):
    def test_a_second_process_on_a_sqlite_data_dir_refuses_and_a_crashed_ones_successor_starts_at_once(self):
        data_dir = tempfile.mkdtemp(prefix="harbor-it-single-")
        self.addCleanup(shutil.rmtree, data_dir, True)
        config = support.oci_config("http://127.0.0.1:9", routes=["proxied/*"])
        first = support.HarborServer(config, data_dir=data_dir)
        self.addCleanup(first.close)
        in_progress = os.path.join(data_dir, "tmp", "in-progress")
        with open(in_progress, "wb") as f:
            f.write(b"half a blob")

        twin = support.HarborServer(config, data_dir=data_dir, start=False)
        self.addCleanup(twin.close)
        twin._daemon.start(twin.command(), env=twin.env, cwd=support.REPO_ROOT)
        self.assertNotEqual(twin._daemon.proc.wait(60), 0)
        events = [json.loads(line) for line in twin.log_text().splitlines() if line.startswith("{")]
        refusals = [e for e in events if e.get("log_format", "").startswith("harbor-cache refuses to start")]
        self.assertEqual(len(refusals), 1, twin.log_text()[-3000:])
        self.assertIn("sqlite index", refusals[0]["reason"])
        self.assertEqual([e for e in events if "log_failure" in e], [])
        self.assertTrue(os.path.exists(in_progress), "the twin must not clean the live process's temp files")
        self.assertEqual(support.http("GET", first.url + "/health")[0], 200)

        first._daemon._signal(signal.SIGKILL)
        first._daemon.proc.wait(10)
        started = time.monotonic()
        twin.start()
        self.assertLess(time.monotonic() - started, 25)  # no lease to wait out (30 s by default)
        self.assertFalse(os.path.exists(in_progress))  # the dead process's leftovers are cleaned as before
