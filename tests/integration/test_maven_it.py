"""Real mvn and curl through harbor-cache's Maven front, against nginx serving a Maven repository.

- ``mvn -B -C clean install`` of a small project (commons-lang3, junit, a
  version range and a SNAPSHOT dependency) cold, then again with a fresh local
  repository while the upstream is stopped: the warm build must pass offline.
- A private repository used with a token from ``POST /token`` as the password
  of the mirror's <server> in settings.xml.
- 20 concurrent cold curl GETs of the 50 MiB harness:big jar: one upstream GET,
  every body correct.
"""

import base64
import hashlib
import os
import shutil
import subprocess
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import support

BIG = "harness/big/1.0/big-1.0.jar"

EXTRA_DEPENDENCIES = """
    <dependency><groupId>harness</groupId><artifactId>small</artifactId><version>[1.0,2.0)</version></dependency>
    <dependency><groupId>harness</groupId><artifactId>snap</artifactId><version>1.0-SNAPSHOT</version></dependency>
  </dependencies>"""


def _tmpdir(testcase):
    d = tempfile.mkdtemp(prefix="harbor-it-maven-")
    testcase.addCleanup(shutil.rmtree, d, True)
    return d


def write_project(path):
    """The harness's tiny project plus a version-range and a SNAPSHOT dependency."""
    support.write_tiny_project(path)
    pom = os.path.join(path, "pom.xml")
    with open(pom) as f:
        text = f.read()
    with open(pom, "w") as f:
        f.write(text.replace("\n  </dependencies>", EXTRA_DEPENDENCIES, 1))
    return path


def sha1_file(path):
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class MavenBuildTests(SynchronousTestCase):
    def test_cold_then_warm_offline(self):
        """A cold build fills the cache; with the upstream stopped a fresh local repo still builds."""
        support.require("mvn")
        up = support.MavenUpstream()  # our own: this test stops it
        self.addCleanup(up.close)
        srv = support.HarborServer(support.maven_config([{"id": "central", "url": up.url}]))
        self.addCleanup(srv.close)
        d = _tmpdir(self)
        project = write_project(os.path.join(d, "project"))
        settings = support.write_maven_settings(os.path.join(d, "settings.xml"), srv.url + "/artifacts/central/")

        cold = support.mvn(settings, os.path.join(d, "m2-cold"), "-C", "clean", "install", cwd=project)
        support.check_ok(cold)
        self.assertIn("BUILD SUCCESS", cold.stdout)
        jar = os.path.join(d, "m2-cold", "harness", "snap", "1.0-SNAPSHOT")
        self.assertTrue(os.path.isdir(jar), cold.stdout[-3000:])
        self.assertTrue(os.path.isdir(os.path.join(d, "m2-cold", "harness", "small", "1.0")))
        up.stop()  # nginx has written its last access line once it is stopped
        upstream_requests = up.count_requests(None, "/")
        self.assertGreater(upstream_requests, 10)

        warm = support.mvn(settings, os.path.join(d, "m2-warm"), "-C", "clean", "install", cwd=project)
        support.check_ok(warm)
        self.assertIn("BUILD SUCCESS", warm.stdout)
        self.assertNotIn("Checksum validation failed", warm.stdout)
        self.assertEqual(up.count_requests(None, "/"), upstream_requests)

        status, _, body = support.http("GET", srv.url + "/repositories")
        self.assertEqual(status, 200)
        self.assertIn(b'"artifactCount"', body)

    def test_private_repository_with_token(self):
        """A private repository: 401 without a token; mvn with the JWT as its password resolves."""
        support.require("mvn")
        up = support.shared_maven_upstream()
        srv = support.HarborServer(support.maven_config([{"id": "internal", "url": up.url, "private": True}]))
        self.addCleanup(srv.close)
        status, headers, _ = support.http("GET", srv.url + "/artifacts/internal/harness/small/1.0/small-1.0.pom")
        self.assertEqual(status, 401)
        self.assertIn("Bearer", headers.get_all("WWW-Authenticate"))

        auth = "Basic " + base64.b64encode(b"admin:" + srv.admin_password.encode()).decode()
        status, headers, token = support.http(
            "POST",
            srv.url + "/token",
            headers={"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"},
            body="repositories=internal&scope=artifacts:read&expires_in=1",
        )
        self.assertEqual(status, 200, token)
        self.assertEqual(headers.get("Content-Type"), "text/plain")
        token = token.decode()

        d = _tmpdir(self)
        settings = support.write_maven_settings(
            os.path.join(d, "settings.xml"), srv.url + "/artifacts/internal/", "admin", token
        )
        cp = support.mvn(settings, os.path.join(d, "m2"), "-C", "dependency:get", "-Dartifact=harness:small:1.0", cwd=d)
        support.check_ok(cp)
        self.assertTrue(os.path.exists(os.path.join(d, "m2", "harness", "small", "1.0", "small-1.0.jar")))

        status, _, _ = support.http(
            "GET",
            srv.url + "/artifacts/internal/harness/small/1.0/small-1.0.pom",
            headers={"Authorization": "Bearer " + token},
        )
        self.assertEqual(status, 200)


class ConcurrentColdTests(SynchronousTestCase):
    def test_twenty_concurrent_cold_gets(self):
        """20 curl processes asking for the cold 50 MiB jar at once: one upstream GET, 20 correct bodies."""
        support.require("curl")
        up = support.shared_maven_upstream()
        before = up.count_requests("GET", BIG, suffix=True)  # the jar alone, not its .sha1
        srv = support.HarborServer(support.maven_config([{"id": "central", "url": up.url}]))
        self.addCleanup(srv.close)
        d = _tmpdir(self)
        url = srv.url + "/artifacts/central/" + BIG
        procs = [
            subprocess.Popen(
                ["curl", "-sS", "-f", "-o", os.path.join(d, "big-%d.jar" % i), url],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for i in range(20)
        ]
        for p in procs:
            _, err = p.communicate(timeout=300)
            self.assertEqual(p.returncode, 0, err)
        expected = support.http("GET", up.url + BIG + ".sha1")[2].decode().split()[0]
        for i in range(20):
            self.assertEqual(sha1_file(os.path.join(d, "big-%d.jar" % i)), expected)
        # (nginx logs a GET after its response: wait for the line)
        self.assertEqual(up.wait_requests("GET", BIG, before + 1, suffix=True) - before, 1)
        # And it is a hit now: no further upstream GET (one would be logged a moment after the answer).
        status, _, body = support.http("GET", url)
        self.assertEqual((status, hashlib.sha1(body).hexdigest()), (200, expected))
        self.assertEqual(up.wait_requests("GET", BIG, before + 2, timeout=2, suffix=True) - before, 1)
