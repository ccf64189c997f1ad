"""The integration fixtures themselves, without harbor-cache: upstreams come up,
serve what the generators made, count requests and survive a restart."""

import hashlib
import json
import os
import sys
import tempfile
import tomllib
import xml.etree.ElementTree as ET

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.integration import support

SMALL_JAR = "harness/small/1.0/small-1.0.jar"
LANG3_JAR = "org/apache/commons/commons-lang3/3.12.0/commons-lang3-3.12.0.jar"


def _tmpdir(case):
    d = tempfile.mkdtemp(prefix="harbor-it-smoke-")
    case.addCleanup(support.shutil.rmtree, d, True)
    return d


class RequireTests(SynchronousTestCase):
    def _with_ci(self, value):
        old = os.environ.get("CI")
        self.addCleanup(lambda: os.environ.__setitem__("CI", old) if old is not None else os.environ.pop("CI", None))
        if value is None:
            os.environ.pop("CI", None)
        else:
            os.environ["CI"] = value

    def test_missing_tool_skips_outside_ci(self):
        """Without CI a missing tool skips the test."""
        self._with_ci(None)
        self.assertRaises(SkipTest, support.require, "sh", "no-such-tool-harbor-it")

    def test_missing_tool_fails_in_ci(self):
        """With CI set a missing tool is a failure, never a skip."""
        self._with_ci("true")
        e = self.assertRaises(AssertionError, support.require, "no-such-tool-harbor-it")
        self.assertIn("no-such-tool-harbor-it", str(e))

    def test_present_tools_pass(self):
        """Tools on PATH make require a no-op."""
        self._with_ci("true")
        support.require("sh")


class CountingTests(SynchronousTestCase):
    """The log counting the tests rely on, on a log file written here."""

    def test_suffix_leaves_the_checksum_files_out(self):
        """A substring counts x.jar.sha1 with x.jar; ``suffix`` counts the file alone, its query ignored."""
        path = os.path.join(_tmpdir(self), "access.log")
        with open(path, "w") as f:
            for target in ("/a/x.jar", "/a/x.jar.sha1", "/a/x.jar?y=1", "/a/x.jar.md5"):
                f.write('127.0.0.1 - - [06/Dec/2026:07:00:00 +0000] "GET %s HTTP/1.1" 200 5 "-" "curl"\n' % target)
        self.assertEqual(support.count_log_requests(path, "GET", "x.jar"), 4)
        self.assertEqual(support.count_log_requests(path, "GET", "x.jar", suffix=True), 2)

    def test_wait_count_and_settled_count(self):
        """wait_count returns once the count is reached, or its last value at the deadline; settled_count returns
        the value that held still for the quiet time."""
        values = iter([0, 1, 2, 3])
        self.assertEqual(support.wait_count(lambda: next(values), 2, timeout=5), 2)
        self.assertEqual(support.wait_count(lambda: 1, 2, timeout=0.2), 1)
        moving = iter([0, 1, 2] + [3] * 1000)
        self.assertEqual(support.settled_count(lambda: next(moving), quiet=0.2, timeout=10), 3)


class ConfigTests(SynchronousTestCase):
    def test_oci_config_is_toml(self):
        """oci_config gives one [[upstreams]] with defaults and overrides."""
        text = support.oci_config(
            "http://127.0.0.1:1",
            username="u",
            password='p"w',
            library_prefix=True,
            server={"eviction_interval_seconds": 5},
        )
        cfg = tomllib.loads(text)
        self.assertEqual(cfg["server"], {"eviction_interval_seconds": 5})
        self.assertEqual(
            cfg["upstreams"],
            [
                {
                    "name": "upstream",
                    "url": "http://127.0.0.1:1",
                    "routes": ["*"],
                    "priority": 0,
                    "username": "u",
                    "password": 'p"w',
                    "library_prefix": True,
                }
            ],
        )

    def test_maven_config_is_toml(self):
        """maven_config gives [[maven.repositories]] with private defaulting to false."""
        text = support.maven_config(
            [
                {"id": "central", "url": "http://127.0.0.1:2/"},
                {"id": "secret", "url": "http://127.0.0.1:3/", "private": True, "username": "a", "password": "b"},
            ]
        )
        repos = tomllib.loads(text)["maven"]["repositories"]
        self.assertEqual([(r["id"], r["private"]) for r in repos], [("central", False), ("secret", True)])
        self.assertEqual(repos[1]["username"], "a")

    def test_maven_settings(self):
        """write_maven_settings: mirror of * and a server block with the mirror's id."""
        path = os.path.join(_tmpdir(self), "s.xml")
        support.write_maven_settings(path, "http://127.0.0.1:4/maven/central/", "bob", "t<k>")
        root = ET.parse(path).getroot()
        self.assertEqual(root.findtext("mirrors/mirror/mirrorOf"), "*")
        self.assertEqual(root.findtext("mirrors/mirror/url"), "http://127.0.0.1:4/maven/central/")
        self.assertEqual(root.findtext("servers/server/id"), root.findtext("mirrors/mirror/id"))
        self.assertEqual(root.findtext("servers/server/password"), "t<k>")


class RegistryTests(SynchronousTestCase):
    def test_pushed_digests_served(self):
        """The shared upstream serves library/test with the digests in images.json."""
        reg, images = support.shared_upstream()
        for tag, name in (("1", "single"), ("multi", "multi"), ("large", "large")):
            cp = support.check_ok(
                support.skopeo(
                    "inspect",
                    "--tls-verify=false",
                    "--raw",
                    "docker://%s/library/test:%s" % (reg.hostport, tag),
                    text=False,
                )
            )
            self.assertEqual("sha256:" + hashlib.sha256(cp.stdout).hexdigest(), images["images"][name]["digest"])
        cp = support.check_ok(
            support.skopeo(
                "inspect",
                "--tls-verify=false",
                "--override-arch",
                "arm64",
                "docker://%s/library/test:multi" % reg.hostport,
            )
        )
        arm = json.loads(cp.stdout)
        self.assertEqual(arm["Architecture"], "arm64")
        self.assertEqual(
            arm["Layers"], [l["digest"] for l in images["images"]["multi"]["manifests"]["arm64"]["layers"]]
        )
        self.assertGreaterEqual(reg.wait_requests("GET", "/v2/library/test/manifests/large", 1), 1)
        big = max(images["images"]["large"]["layers"], key=lambda l: l["size"])
        self.assertGreaterEqual(big["size"], 100 * 1024 * 1024)

    def test_blob_http_and_count(self):
        """http() fetches a blob; the access log counts exactly that request."""
        reg, images = support.shared_upstream()
        layer = images["images"]["single"]["layers"][0]
        path = "/v2/library/test/blobs/" + layer["digest"]
        before = reg.count_requests("GET", path)
        status, headers, body = support.http("GET", reg.url + path)
        self.assertEqual(status, 200)
        self.assertEqual(len(body), layer["size"])
        self.assertEqual(headers.get("docker-content-digest"), layer["digest"])
        self.assertEqual(reg.wait_requests("GET", path, before + 1), before + 1)

    def test_restart_keeps_port_and_storage(self):
        """stop() refuses connections; start() serves the same content on the same port."""
        layout, images = support.oci_layout()
        reg = support.Registry()
        self.addCleanup(reg.close)
        support.push_layout(layout, reg.hostport, "it/restart", names=["single"])
        url = reg.url + "/v2/it/restart/manifests/1"
        accept = {"Accept": images["images"]["single"]["mediaType"]}
        reg.stop()
        self.assertRaises(ConnectionRefusedError, support.http, "GET", url)
        reg.start()
        status, headers, _ = support.http("GET", url, accept)
        self.assertEqual((status, headers.get("docker-content-digest")), (200, images["images"]["single"]["digest"]))

    def test_podman_pull(self):
        """podman() pulls from the loopback registry into its own storage."""
        reg, images = support.shared_upstream()
        root = _tmpdir(self)
        support.check_ok(support.podman(root, "pull", "--tls-verify=false", "%s/library/test:1" % reg.hostport))
        cp = support.check_ok(
            support.podman(root, "image", "inspect", "--format", "{{.Digest}}", "%s/library/test:1" % reg.hostport)
        )
        self.assertEqual(cp.stdout.strip(), images["images"]["single"]["digest"])


class MavenUpstreamTests(SynchronousTestCase):
    def test_jar_matches_sha1(self):
        """curl of a jar from the upstream matches the .sha1 next to it."""
        support.require("curl")
        up = support.shared_maven_upstream()
        self.assertTrue(up.url.endswith("/"))
        out = os.path.join(_tmpdir(self), "lang3.jar")
        support.check_ok(support.run(["curl", "-sf", "-o", out, up.url + LANG3_JAR]))
        status, _, sha1 = support.http("GET", up.url + LANG3_JAR + ".sha1")
        self.assertEqual(status, 200)
        with open(out, "rb") as f:
            self.assertEqual(hashlib.sha1(f.read()).hexdigest(), sha1.decode().strip())
        self.assertGreaterEqual(up.wait_requests("GET", LANG3_JAR + ".sha1", 1, status=200), 1)

    def test_big_jar_size(self):
        """harness:big:1.0 is served at its generated size (50 MiB payload)."""
        up = support.shared_maven_upstream()
        status, headers, _ = support.http("HEAD", up.url + "harness/big/1.0/big-1.0.jar")
        self.assertEqual(status, 200)
        self.assertGreater(int(headers["Content-Length"]), 50 * 1024 * 1024)

    def test_restart(self):
        """A private MavenUpstream stops (refused) and starts again on the same port."""
        up = support.MavenUpstream()
        self.addCleanup(up.close)
        up.stop()
        self.assertRaises(ConnectionRefusedError, support.http, "GET", up.url + SMALL_JAR)
        up.start()
        self.assertEqual(support.http("GET", up.url + SMALL_JAR)[0], 200)
        self.assertEqual(up.wait_requests("GET", SMALL_JAR, 1, status=200), 1)

    def test_mvn_dependency_get(self):
        """mvn() with write_maven_settings resolves a snapshot with strict checksums."""
        up = support.shared_maven_upstream()
        d = _tmpdir(self)
        settings = support.write_maven_settings(os.path.join(d, "settings.xml"), up.url, "user", "pw")
        cp = support.mvn(
            settings, os.path.join(d, "m2"), "-C", "dependency:get", "-Dartifact=harness:snap:1.0-SNAPSHOT", cwd=d
        )
        support.check_ok(cp)
        self.assertIn("BUILD SUCCESS", cp.stdout)
        jar = os.path.join(d, "m2", "harness", "snap", "1.0-SNAPSHOT", "snap-1.0-SNAPSHOT.jar")
        self.assertTrue(os.path.exists(jar), cp.stdout[-3000:])


class _StandInServer(support.HarborServer):
    """HarborServer's process handling around python's http.server."""

    def command(self):
        www = os.path.join(self.dir, "www")
        os.makedirs(www, exist_ok=True)
        with open(os.path.join(www, "health"), "w") as f:
            f.write('{"status": "healthy"}')
        return [sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1", "--directory", www]


class HarborServerTests(SynchronousTestCase):
    def test_config_env_and_restart(self):
        """Config gets the port and a public_url; restart keeps port and data dir; close cleans up."""
        srv = _StandInServer(support.oci_config("http://127.0.0.1:1", name="a@PORT@"))
        self.addCleanup(srv.close)
        cfg = tomllib.loads(open(srv.config_path).read())
        self.assertEqual(cfg["server"]["public_url"], srv.url)
        self.assertEqual(cfg["upstreams"][0]["name"], "a%d" % srv.port)
        self.assertEqual(srv.env["HARBOR_CACHE_ADMIN_PASSWORD"], support.DEFAULT_ADMIN_PASSWORD)
        self.assertEqual(support.http("GET", srv.url + "/health")[0], 200)
        pid = srv.pid
        srv.stop()
        self.assertRaises(ConnectionRefusedError, support.http, "GET", srv.url + "/health")
        srv.restart()
        self.assertNotEqual(srv.pid, pid)
        self.assertEqual(support.http("GET", srv.url + "/health")[0], 200)
        self.assertIn("GET /health", srv.log_text())
        self.assertIn("harbor-cache", support.HarborServer.command(srv)[3])
        srv.close()
        self.assertFalse(os.path.exists(srv.dir))

    def test_own_server_section_and_env(self):
        """A config with [server] is kept as given; env overrides the admin password."""
        srv = _StandInServer(
            '[server]\npublic_url = "http://localhost:@PORT@"\n', env={"HARBOR_CACHE_ADMIN_PASSWORD": "x"}
        )
        self.addCleanup(srv.close)
        cfg = tomllib.loads(open(srv.config_path).read())
        self.assertEqual(cfg, {"server": {"public_url": "http://localhost:%d" % srv.port}})
        self.assertEqual(srv.admin_password, "x")

    def test_early_exit_reports_log(self):
        """A server that dies before /health answers raises with the tail of its log."""

        class Dies(support.HarborServer):
            def command(self):
                return [sys.executable, "-c", "import sys; print('boom-marker'); sys.exit(3)"]

        e = self.assertRaises(RuntimeError, Dies, "")
        self.assertIn("boom-marker", str(e))
