"""``[log] access_file`` on a real server: one JSON line per request in the file, none in the main log; the default
(``DATA/logs/access.log``) and ``"-"`` (the main log)."""

import json
import os
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import support

SMALL = "org/apache/commons/commons-lang3/3.12.0/commons-lang3-3.12.0.pom"


def _lines(path):
    """The lines of our requests (not the readiness probes' GET /health)."""
    try:
        with open(path, encoding="utf-8") as f:
            return [x for x in map(json.loads, f) if x["path"].startswith("/artifacts/")]
    except FileNotFoundError:
        return []


class AccessFileTests(SynchronousTestCase):
    def test_one_line_per_request(self):
        up = support.shared_maven_upstream()
        config = support.maven_config([{"id": "central", "url": up.url}]) + '\n[log]\naccess_file = "access.log"\n'
        srv = support.HarborServer(config)
        self.addCleanup(srv.close)
        path = os.path.join(srv.data_dir, "access.log")
        base = srv.url + "/artifacts/central/"
        for target, status in ((SMALL, 200), (SMALL, 200), ("no/such/1.0/such-1.0.pom", 404)):
            got, _, _ = support.http("GET", base + target)
            self.assertEqual(got, status, target)

        deadline = time.monotonic() + 10  # the buffer is written within a second
        while len(_lines(path)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        lines = _lines(path)
        self.assertEqual(
            [(x["method"], x["path"], x["status"], x["cache_status"]) for x in lines],
            [
                ("GET", "/artifacts/central/" + SMALL, "200", "miss"),
                # (the first answer may end before its file is committed: the second then joins that commit)
                (
                    "GET",
                    "/artifacts/central/" + SMALL,
                    "200",
                    "coalesced" if lines[1]["cache_status"] == "coalesced" else "hit",
                ),
                ("GET", "/artifacts/central/no/such/1.0/such-1.0.pom", "404", lines[2]["cache_status"]),
            ],
        )
        self.assertEqual(lines[0]["bytes"], lines[1]["bytes"])
        self.assertGreater(lines[1]["bytes"], 1000)
        for x in lines:
            self.assertRegex(x["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIsInstance(x["duration_ms"], float)
        self.assertNotIn(SMALL, srv.log_text(), "access lines went to the main log too")

        # A line still in the buffer at SIGTERM is written on the way out (by now the file is stored: a hit).
        support.http("GET", base + SMALL + "?last")
        srv.stop()
        last = _lines(path)[-1]
        self.assertEqual(
            (last["path"], last["status"], last["cache_status"]),
            ("/artifacts/central/" + SMALL + "?last", "200", "hit"),
        )

    def test_default_is_the_file_in_the_data_dir_and_dash_is_the_main_log(self):
        """No [log] table: lines in DATA/logs/access.log (issue 30); access_file = "-": the main log as before."""
        up = support.shared_maven_upstream()
        config = support.maven_config([{"id": "central", "url": up.url}])
        srv = support.HarborServer(config)
        self.addCleanup(srv.close)
        self.assertEqual(support.http("GET", srv.url + "/artifacts/central/" + SMALL)[0], 200)
        srv.stop()  # the buffer is written on the way out
        lines = _lines(os.path.join(srv.data_dir, "logs", "access.log"))
        self.assertEqual([x["path"] for x in lines], ["/artifacts/central/" + SMALL])
        self.assertNotIn(SMALL, srv.log_text())

        main = support.HarborServer(config + '\n[log]\naccess_file = "-"\n')
        self.addCleanup(main.close)
        self.assertEqual(support.http("GET", main.url + "/artifacts/central/" + SMALL)[0], 200)
        main.stop()
        self.assertFalse(os.path.exists(os.path.join(main.data_dir, "logs")))
        events = [json.loads(x) for x in main.log_text().splitlines() if x.startswith("{")]
        access = [e for e in events if e.get("log_namespace") == "harbor_cache.access" and SMALL in e.get("path", "")]
        self.assertEqual(len(access), 1, main.log_text()[-3000:])
