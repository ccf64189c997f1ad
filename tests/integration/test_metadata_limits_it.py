"""Issue 24.2 against the real server: a hostile upstream's maven-metadata.xml cannot stall every client.

A group ``public`` of a hosted repository and a proxy of a loopback nginx
whose ``maven-metadata.xml`` names a 20 KB version (``'0a'*5000 +
'1b'*5000``).  Merging it used to block the reactor for 16 s (``/health``
stalled as long).  Now the copy is left out of the merge with a log line,
and ``/health``, polled while the group's metadata is fetched, keeps
answering at once.
"""

import base64
import os
import shutil
import tempfile
import threading
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import support
from tests.integration.log_events import lines_at
from tests.integration.support import http

HOSTILE_VERSION = "0a" * 5000 + "1b" * 5000
META = "com/example/evil/maven-metadata.xml"
HOSTED = b"""<?xml version="1.0" encoding="UTF-8"?>
<metadata><groupId>com.example</groupId><artifactId>evil</artifactId>
<versioning><latest>1.0</latest><release>1.0</release><versions><version>1.0</version></versions>
<lastUpdated>20261201000000</lastUpdated></versioning></metadata>
"""


def hostile_metadata() -> bytes:
    versions = "".join(f"<version>{v}</version>" for v in ("0.9", HOSTILE_VERSION, HOSTILE_VERSION + "c"))
    return (
        "<metadata><groupId>com.example</groupId><artifactId>evil</artifactId>"
        f"<versioning><versions>{versions}</versions><lastUpdated>20261130000000</lastUpdated></versioning>"
        "</metadata>"
    ).encode()


class HostileMemberTests(SynchronousTestCase):
    def setUp(self):
        root = tempfile.mkdtemp(prefix="harbor-it-evil-")
        self.addCleanup(shutil.rmtree, root, True)
        os.makedirs(os.path.join(root, os.path.dirname(META)))
        with open(os.path.join(root, META), "wb") as f:
            f.write(hostile_metadata())
        os.chmod(root, 0o755)
        self.upstream = support.MavenUpstream(root=root)
        self.addCleanup(self.upstream.close)
        config = support.maven_config(
            [
                {"id": "releases", "type": "hosted"},
                {"id": "evil", "url": self.upstream.url},
                {"id": "public", "type": "group", "members": ["releases", "evil"]},
            ]
        )
        self.server = support.HarborServer(config)
        self.addCleanup(self.server.close)
        admin = base64.b64encode(b"admin:" + self.server.admin_password.encode()).decode()
        status, _, body = http(
            "PUT", f"{self.server.url}/artifacts/releases/{META}", {"Authorization": "Basic " + admin}, HOSTED
        )
        self.assertIn(status, (200, 201), body)

    def test_health_answers_while_the_group_metadata_is_fetched(self):
        latencies: list[float] = []
        done = threading.Event()

        def poll():
            while not done.is_set():
                started = time.perf_counter()
                status, _, _ = http("GET", self.server.url + "/health", timeout=60)
                latencies.append(time.perf_counter() - started)
                assert status in (200, 503)
                time.sleep(0.005)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        try:
            time.sleep(0.2)
            for _ in range(3):
                started = time.perf_counter()
                status, _, body = http("GET", f"{self.server.url}/artifacts/public/{META}")
                elapsed = time.perf_counter() - started
                self.assertEqual((status, body), (200, HOSTED))
                self.assertLess(elapsed, 2.0)  # the first asks the upstream; it took 16 s merging before
            time.sleep(0.2)
        finally:
            done.set()
            poller.join(60)
        self.assertGreater(len(latencies), 10)
        # A /health round trip over loopback on a loaded test machine: 50 ms of reactor time plus slack.
        self.assertLess(max(latencies), 0.25, sorted(latencies)[-5:])
        warnings = lines_at(self.server, "warn")
        self.assertTrue(
            [w for w in warnings if "without evil's copy: a version longer than 256 characters" in w], warnings
        )
        self.assertEqual(lines_at(self.server, "critical") + lines_at(self.server, "error"), [])

    def test_the_hostile_copy_is_served_alone(self):
        """Its own proxy repository serves the copy as the upstream sent it (it is never parsed there)."""
        status, _, body = http("GET", f"{self.server.url}/artifacts/evil/{META}")
        self.assertEqual((status, body), (200, hostile_metadata()))
