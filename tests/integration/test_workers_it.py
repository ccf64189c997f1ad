"""``[server] workers = 2`` on the sqlite index: one port, two processes, one upstream GET, one server per directory.

A real server (``twist``) whose config has nothing but ``workers = 2`` and
its upstream; the upstream is the shared docker-registry behind the fault
proxy, which counts upstream GETs and slows the blob so that every client
arrives while it is in flight (as in `test_scaleout_it`, here across the
workers of one server instead of two nodes).  Which worker answered is read
from the access log files (``logs/access-w<i>.log``, one per worker).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import oci_support as oci
from tests.integration import support

CLIENTS = 20


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class WorkersTests(SynchronousTestCase):
    def setUp(self):
        support.require("docker-registry", "skopeo")
        reg, images = support.shared_upstream()
        layer = max(images["images"]["large"]["layers"], key=lambda l: l["size"])
        self.digest, self.size = layer["digest"], layer["size"]
        self.fault = oci.FaultUpstream(reg.url)
        self.addCleanup(self.fault.close)
        self.srv = support.HarborServer(oci.harbor_config(self.fault.url, workers=2))
        self.addCleanup(self.srv.close)

    def events(self, server=None):
        text = (server or self.srv).log_text()
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def worker_pids(self) -> dict[int, int]:
        """Worker number -> pid of its latest start, from the parent's "started worker" lines."""
        pids = {}
        for e in self.events():
            if e.get("log_format") == "started worker {index} (pid {pid})":
                pids[e["index"]] = e["pid"]
        return pids

    def access_paths(self, worker: int) -> list[str]:
        path = os.path.join(self.srv.data_dir, "logs", "access-w%d.log" % worker)
        try:
            with open(path) as f:
                return [json.loads(line)["path"] for line in f]
        except FileNotFoundError:
            return []

    def wait_for(self, what, check, timeout=30):
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for " + what + "\n" + self.srv.log_text()[-3000:])
            time.sleep(0.1)

    def test_two_workers_one_upstream_get_one_server_clean_stop(self):
        self.wait_for("both workers", lambda: len(self.worker_pids()) == 2)
        path = "/v2/library/test/blobs/" + self.digest

        # Both workers answer on the one port (fresh connections spread over them).
        def both_answered():
            for _ in range(10):
                self.assertEqual(support.http("GET", self.srv.url + "/v2/")[0], 401)
            return all("/v2/" in self.access_paths(w) for w in (0, 1))

        self.wait_for("an answer from each worker", both_answered)

        # 20 concurrent cold GETs of one blob over both workers: one upstream GET, 20 whole bodies.
        self.fault.set_rules({"path": self.digest, "mode": "rate", "rate": self.size // 3})
        results = oci.fetch_concurrently([self.srv.url + path] * CLIENTS, keep=False)
        for i, r in enumerate(results):
            self.assertEqual((r.status, r.error, r.length, r.digest), (200, None, self.size, self.digest), i)
        self.assertEqual(self.fault.wait_requests("GET", self.digest, 2, timeout=1), 1)
        self.wait_for(
            "the blob GETs in the access logs", lambda: sum(self.access_paths(w).count(path) for w in (0, 1)) == CLIENTS
        )
        self.assertTrue(all(self.access_paths(w).count(path) for w in (0, 1)), "both workers served the blob")
        for w in (0, 1):
            node_tmp = [d for d in os.listdir(os.path.join(self.srv.data_dir, "tmp")) if d.endswith("-w%d" % w)]
            self.assertEqual(len(node_tmp), 1)
            self.assertEqual(os.listdir(os.path.join(self.srv.data_dir, "tmp", node_tmp[0])), [])

        # A second server on the same data directory is refused (the parent holds the lock for its workers).
        twin = support.HarborServer("[server]\nworkers = 2\n", data_dir=self.srv.data_dir, start=False)
        self.addCleanup(twin.close)
        twin._daemon.start(twin.command(), env=twin.env, cwd=support.REPO_ROOT)
        self.assertNotEqual(twin._daemon.proc.wait(60), 0)
        refusals = [e for e in self.events(twin) if e.get("log_format", "").startswith("harbor-cache refuses")]
        self.assertEqual(len(refusals), 1, twin.log_text()[-3000:])
        self.assertIn("sqlite index", refusals[0]["reason"])

        # A crashed worker is restarted (and logged); the server answers throughout.
        old = self.worker_pids()
        os.kill(old[1], signal.SIGKILL)
        self.wait_for("worker 1 restarted", lambda: self.worker_pids()[1] != old[1])
        self.assertTrue(any(re.match("worker {index} .*exited", e.get("log_format", "")) for e in self.events()))
        self.assertEqual(support.http("GET", self.srv.url + path)[0], 200)

        # SIGTERM to the parent alone stops every worker, then the parent; no process is left.
        pids = list(self.worker_pids().values())
        self.wait_for("the new worker serving", lambda: all(_pid_alive(p) for p in pids))
        os.kill(self.srv.pid, signal.SIGTERM)
        self.assertIn(self.srv._daemon.proc.wait(60), (0, -signal.SIGTERM))  # twist ends by the signal it got
        self.wait_for("no worker left", lambda: not any(_pid_alive(p) for p in pids), timeout=10)
        stopped = [e for e in self.events() if e.get("log_format") == "worker {index} (pid {pid}) stopped"]
        self.assertEqual(sorted(e["index"] for e in stopped), [0, 1])
