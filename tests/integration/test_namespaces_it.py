"""One cache in front of two registries, with real clients (issue 14, point 7).

Two distribution registries on loopback play docker.io and quay.io; each
holds a *different* image under ``library/test:1``.  harbor-cache serves
docker.io by route (``*``) and by ``ns=docker.io``, and quay.io by the prefix
``quay`` and by ``ns=quay.io``:

- containerd (its own daemon, root, state and socket under a temp dir; no CRI
  plugin) pulls ``docker.io/library/test:1`` and ``quay.io/library/test:1``
  through one hosts.toml mirror each, and gets the two different digests;
- podman pulls ``<cache>/quay/library/test:1`` (the prefix);
- dockerd pulls ``library/test:1`` through ``registry-mirrors`` (the default
  namespace, chosen by routes);
- a push into the quay namespace is refused (403 DENIED);
- quay stopped -> blocked (API, /metrics, access log) -> restarted -> unblocked;
- an upstream added through the API serves at once and survives a restart.

Every fallback the clients have (containerd's ``server``, dockerd's Docker
Hub) points at a dead loopback port or proxy: nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import time

from twisted.trial.unittest import SynchronousTestCase

from tests import pg_support
from tests.integration import oci_support as oci
from tests.integration import support

DEAD = "127.0.0.1:9"  # discard port: connection refused


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.2)


def access_lines(srv, log_format, upstream="quay"):
    """The server's access-log events with this format about ``upstream`` (the log is JSON lines)."""
    events = []
    for line in srv.log_text().split("\x1e"):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if (
            event.get("log_namespace") == "harbor_cache.access"
            and event.get("log_format", "").startswith(log_format)
            and event.get("upstream") == upstream
        ):
            events.append(event)
    return events


class _Peers:
    """The two registries and the cache, started once for the module (trial has no setUpClass)."""

    def __init__(self):
        cls = self
        support.require("docker-registry", "skopeo")
        cls.hub, hub_images = support.shared_upstream()
        cls.hub_digest = hub_images["images"]["single"]["digest"]
        quay_layout, quay_images = support.oci_layout(seed=2, large=1)
        cls.quay = support.Registry()
        try:
            support.push_layout(quay_layout, cls.quay.hostport, "library/test", names=["single"])
        except BaseException:
            cls.quay.close()
            raise
        cls.quay_digest = quay_images["images"]["single"]["digest"]
        assert cls.quay_digest != cls.hub_digest
        config = support.toml_config(
            server={"public_url": "http://127.0.0.1:@PORT@"},
            upstreams=[
                {"name": "hub", "url": cls.hub.url, "registry": "docker.io", "routes": ["*"], "priority": 0},
                {"name": "quay", "url": cls.quay.url, "registry": "quay.io", "prefix": "quay", "priority": 1},
            ],
        )
        try:
            cls.srv = support.HarborServer(config)
        except BaseException:
            cls.quay.close()
            raise
        atexit.register(self.close)

    def close(self):
        self.srv.close()
        self.quay.close()


_PEERS = None


class NamespacesIT(SynchronousTestCase):
    def setUp(self):
        global _PEERS
        if _PEERS is None:
            _PEERS = _Peers()
        for attr in ("hub", "hub_digest", "quay", "quay_digest", "srv"):
            setattr(self, attr, getattr(_PEERS, attr))
        self.dir = tempfile.mkdtemp(prefix="hit-ns-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def api(self, method, path, body=None):
        token = self.srv.login()
        status, headers, answer = support.http(
            method, self.srv.url + path, body=body, headers={"Authorization": "Bearer " + token}
        )
        return status, (json.loads(answer) if answer else None)

    def upstream(self, name):
        status, body = self.api("GET", "/api/v1/upstreams")
        self.assertEqual(status, 200, body)
        return next(u for u in body["upstreams"] if u["name"] == name)

    # -- containerd ---------------------------------------------------------------------

    def start_containerd(self):
        support.require("containerd", "ctr")
        support.needs_root("containerd")
        sock = os.path.join(self.dir, "c.sock")
        config = os.path.join(self.dir, "config.toml")
        with open(config, "w") as f:
            f.write(
                "\n".join(
                    [
                        "version = 2",
                        'root = "%s"' % os.path.join(self.dir, "root"),
                        'state = "%s"' % os.path.join(self.dir, "state"),
                        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
                        "[grpc]",
                        '  address = "%s"' % sock,
                        "[ttrpc]",
                        '  address = "%s.ttrpc"' % sock,
                        "[debug]",
                        '  address = ""',
                        "[metrics]",
                        '  address = ""',
                        "",
                    ]
                )
            )
        daemon = support._Daemon("containerd", os.path.join(self.dir, "containerd.log"))
        daemon.start(["containerd", "--config", config])
        self.addCleanup(daemon.stop, 20)
        deadline = time.monotonic() + 30
        while True:
            cp = support.run(["ctr", "--address", sock, "version"], timeout=30)
            if cp.returncode == 0:
                return sock
            if not daemon.running() or time.monotonic() > deadline:
                with open(daemon.log_path, "rb") as f:
                    tail = f.read()[-3000:].decode("utf-8", "replace")
                support.unavailable("containerd cannot run here: %s\n%s" % (cp.stderr[-500:], tail))
            time.sleep(0.2)

    def test_containerd_pulls_two_registries_through_one_cache(self):
        """ctr pull docker.io/library/test:1 and quay.io/library/test:1 (ns=) get their own registry's digest."""
        sock = self.start_containerd()
        hosts = os.path.join(self.dir, "hosts")
        for registry in ("docker.io", "quay.io"):
            os.makedirs(os.path.join(hosts, registry))
            with open(os.path.join(hosts, registry, "hosts.toml"), "w") as f:
                f.write(
                    'server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n'
                    % (DEAD, self.srv.hostport)
                )
        pulled = {}
        for registry in ("docker.io", "quay.io"):
            ref = "%s/library/test:1" % registry
            support.check_ok(
                support.run(
                    ["ctr", "--address", sock, "images", "pull", "--hosts-dir", hosts, "--plain-http", ref], timeout=300
                )
            )
            cp = support.check_ok(support.run(["ctr", "--address", sock, "images", "ls"], timeout=60))
            line = next(row for row in cp.stdout.splitlines() if row.startswith(ref + " "))
            pulled[registry] = next(word for word in line.split() if word.startswith("sha256:"))
        self.assertEqual(pulled, {"docker.io": self.hub_digest, "quay.io": self.quay_digest})
        # containerd really sent ns=: each registry was asked for its own library/test:1.
        self.assertGreaterEqual(self.quay.wait_requests("GET", "/v2/library/test/manifests/1", 1), 1)
        wait_for(lambda: "ns=quay.io" in self.srv.access_log_text(), 10, "an access line with ns=quay.io")

    # -- podman ---------------------------------------------------------------------------

    def test_podman_pulls_through_a_prefix(self):
        """podman pull <cache>/quay/library/test:1 is quay's image; <cache>/library/test:1 is docker.io's."""
        support.require("podman")
        for ref, digest in (
            ("%s/quay/library/test:1" % self.srv.hostport, self.quay_digest),
            ("%s/library/test:1" % self.srv.hostport, self.hub_digest),
        ):
            root = os.path.join(self.dir, "podman-" + digest[7:15])
            support.check_ok(support.podman(root, "pull", "--tls-verify=false", ref))
            cp = support.check_ok(support.podman(root, "image", "inspect", "--format", "{{.Digest}}", ref))
            self.assertEqual(cp.stdout.strip(), digest)

    # -- docker ---------------------------------------------------------------------------

    def test_docker_pulls_through_registry_mirrors(self):
        """dockerd with registry-mirrors: library/test:1 comes from the default namespace (routes: docker.io)."""
        support.require("dockerd", "docker")
        support.needs_root("dockerd")
        sock = os.path.join(self.dir, "docker.sock")
        daemon = support._Daemon("dockerd", os.path.join(self.dir, "dockerd.log"))
        # Docker Hub itself is only reachable through a proxy that does not exist:
        # if the mirror failed, the fallback would fail too instead of leaving loopback.
        env = dict(os.environ, HTTPS_PROXY="http://" + DEAD, HTTP_PROXY="http://" + DEAD, NO_PROXY="127.0.0.1")
        daemon.start(
            [
                "dockerd",
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--storage-driver=vfs",
                "--data-root",
                os.path.join(self.dir, "data"),
                "--exec-root",
                os.path.join(self.dir, "exec"),
                "--pidfile",
                os.path.join(self.dir, "dockerd.pid"),
                "-H",
                "unix://" + sock,
                "--registry-mirror",
                self.srv.url,
                "--insecure-registry",
                self.srv.hostport,
            ],
            env=env,
        )
        self.addCleanup(daemon.stop, 20)
        client = dict(os.environ, DOCKER_HOST="unix://" + sock)
        deadline = time.monotonic() + 60
        while support.run(["docker", "version"], env=client, timeout=30).returncode != 0:
            if not daemon.running() or time.monotonic() > deadline:
                with open(daemon.log_path, "rb") as f:
                    support.unavailable("dockerd cannot run here: %s" % f.read()[-2000:].decode("utf-8", "replace"))
            time.sleep(0.2)
        support.check_ok(support.run(["docker", "pull", "library/test:1"], env=client, timeout=600))
        cp = support.check_ok(
            support.run(
                ["docker", "image", "inspect", "--format", "{{json .RepoDigests}}", "library/test:1"],
                env=client,
                timeout=60,
            )
        )
        self.assertIn("test@" + self.hub_digest, " ".join(json.loads(cp.stdout)))

    # -- read-only proxies -------------------------------------------------------------------

    def test_push_into_a_proxy_namespace_is_refused(self):
        """skopeo copy into <cache>/quay/library/test and into a routed name fails with DENIED; nothing changes."""
        layout, _ = support.oci_layout(seed=2, large=1)
        pushes = lambda: self.quay.count_requests("POST", "/v2/") + self.quay.count_requests("PUT", "/v2/")  # noqa: E731
        pushes_before = pushes()
        creds = "admin:" + self.srv.admin_password
        for name in ("quay/library/test", "library/test"):
            cp = support.skopeo(
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                creds,
                "oci:%s:single" % layout,
                "docker://%s/%s:1" % (self.srv.hostport, name),
                timeout=300,
            )
            self.assertNotEqual(cp.returncode, 0, cp.stdout)
            self.assertIn("denied", cp.stderr.lower())
        status, _, body = support.http(
            "POST",
            self.srv.url + "/v2/quay/library/test/blobs/uploads/",
            headers={"Authorization": "Basic " + _basic(creds)},
        )
        self.assertEqual((status, oci.oci_error_codes(body)), (403, ["DENIED"]))
        self.assertIn(b"proxy", body)
        # a push passed on would be logged by quay a moment after its answer: give it that moment
        self.assertEqual(support.wait_count(pushes, pushes_before + 1, timeout=2), pushes_before)
        status, headers, _ = support.http(
            "GET", self.srv.url + "/v2/quay/library/test/manifests/1", {"Accept": oci.OCI_MANIFEST}
        )
        self.assertEqual((status, headers.get("docker-content-digest")), (200, self.quay_digest))

    # -- health ---------------------------------------------------------------------------

    def test_stopped_upstream_is_blocked_then_unblocked(self):
        """quay stopped: failing, then blocked (API, metrics, access log), cached tag served stale;
        quay restarted: healthy and unblocked at the next probe."""
        status, _ = self.api(
            "PUT",
            "/api/v1/config",
            {
                "entries": [
                    {"key": "upstreams.probe_interval_seconds", "value": "1"},
                    {"key": "upstreams.block_after_failures", "value": "2"},
                    {"key": "upstreams.block_seconds", "value": "300"},
                    {"key": "cache.tag_ttl_seconds", "value": "0"},
                ]
            },
        )
        self.assertEqual(status, 200)
        self.addCleanup(
            self.api,
            "PUT",
            "/api/v1/config",
            {
                "entries": [
                    {"key": "upstreams.probe_interval_seconds", "value": "30"},
                    {"key": "cache.tag_ttl_seconds", "value": "300"},
                ]
            },
        )
        status, _, _ = support.http(
            "GET", self.srv.url + "/v2/quay/library/test/manifests/1", {"Accept": oci.OCI_MANIFEST}
        )
        self.assertEqual(status, 200)
        wait_for(lambda: self.upstream("quay")["health"]["status"] == "healthy", 10, "quay healthy")
        self.quay.stop()
        self.addCleanup(lambda: self.quay.running() or self.quay.start())
        blocked = wait_for(
            lambda: (lambda u: u if u["health"]["status"] == "blocked" else None)(self.upstream("quay")),
            15,
            "quay blocked",
        )
        self.assertGreaterEqual(blocked["health"]["consecutive_failures"], 2)
        self.assertIsNotNone(blocked["health"]["blocked_until"])
        self.assertTrue(blocked["health"]["last_error"])
        self.assertEqual(self.upstream("hub")["health"]["status"], "healthy")
        samples = oci.metrics(self.srv)
        self.assertIn(("harbor_cache_upstream_blocked", {"upstream": "quay"}, 1.0), samples)
        self.assertTrue(access_lines(self.srv, "upstream {upstream} blocked"))
        # Blocked: skipped without a connection attempt; the cached tag is served stale.
        status, headers, _ = support.http(
            "GET", self.srv.url + "/v2/quay/library/test/manifests/1", {"Accept": oci.OCI_MANIFEST}
        )
        self.assertEqual((status, headers.get("warning")), (200, oci.STALE_WARNING))
        self.quay.start()
        healthy = wait_for(
            lambda: (lambda u: u if u["health"]["status"] == "healthy" else None)(self.upstream("quay")),
            15,
            "quay unblocked",
        )
        self.assertEqual((healthy["health"]["consecutive_failures"], healthy["health"]["blocked_until"]), (0, None))
        self.assertTrue(access_lines(self.srv, "upstream {upstream} unblocked"))
        self.assertIn(("harbor_cache_upstream_blocked", {"upstream": "quay"}, 0.0), oci.metrics(self.srv))

    # -- upstreams at run time -------------------------------------------------------------------

    def test_upstream_added_through_the_api_serves_at_once_and_persists(self):
        """POST /api/v1/upstreams: the new prefix pulls without a restart; after a restart it is still there."""
        status, created = self.api(
            "POST",
            "/api/v1/upstreams",
            {"name": "mirror2", "url": self.quay.url, "prefix": "second", "username": "u", "password": "never-shown"},
        )
        self.assertEqual(status, 201, created)
        self.addCleanup(self.api, "DELETE", "/api/v1/upstreams/%d" % created["id"])
        self.assertNotIn("never-shown", json.dumps(created))
        status, headers, _ = support.http(
            "GET", self.srv.url + "/v2/second/library/test/manifests/1", {"Accept": oci.OCI_MANIFEST}
        )
        self.assertEqual((status, headers.get("docker-content-digest")), (200, self.quay_digest))
        self.srv.restart()
        self.assertEqual(self.upstream("mirror2")["prefix"], "second")
        self.assertEqual(
            [u["name"] for u in self.api("GET", "/api/v1/upstreams")[1]["upstreams"] if u["kind"] == "oci"],
            ["hub", "quay", "mirror2"],
        )


def _basic(creds):
    import base64

    return base64.b64encode(creds.encode()).decode()


class SecondNodeIT(SynchronousTestCase):
    def test_a_change_on_one_node_applies_on_another_within_seconds(self):
        """Two nodes on one PostgreSQL index and data directory (a sqlite index serves one process only): an
        upstream added through node A serves on node B without a restart, within a few seconds."""
        global _PEERS
        if _PEERS is None:
            _PEERS = _Peers()
        db_url = pg_support.fresh_database_url(self)
        data_dir = tempfile.mkdtemp(prefix="harbor-it-shared-")
        self.addCleanup(shutil.rmtree, data_dir, True)
        nodes = []
        for name in ("node-a", "node-b"):
            index = support._toml_table("[index]", {"url": db_url, "node_name": name, "pool_size": 4})
            node = support.HarborServer(_PEERS.srv.config_text + "\n" + index, data_dir=data_dir)
            self.addCleanup(node.close)
            nodes.append(node)
        node_a, node_b = nodes
        url = "/v2/third/library/test/manifests/1"
        status, _, _ = support.http("GET", node_b.url + url, {"Accept": oci.OCI_MANIFEST})
        self.assertEqual(status, 404)
        token = node_a.login()
        status, _, body = support.http(
            "POST",
            node_a.url + "/api/v1/upstreams",
            headers={"Authorization": "Bearer " + token},
            body={"name": "third", "url": _PEERS.quay.url, "prefix": "third"},
        )
        self.assertEqual(status, 201, body)
        created = json.loads(body)
        self.addCleanup(
            support.http,
            "DELETE",
            node_a.url + "/api/v1/upstreams/%d" % created["id"],
            {"Authorization": "Bearer " + node_a.login()},
        )
        started = time.monotonic()
        wait_for(
            lambda: support.http("GET", node_b.url + url, {"Accept": oci.OCI_MANIFEST})[0] == 200,
            10,
            "node B to serve the new prefix",
        )
        self.assertLess(time.monotonic() - started, 8)
        status, headers, _ = support.http("GET", node_b.url + url, {"Accept": oci.OCI_MANIFEST})
        self.assertEqual(headers.get("docker-content-digest"), _PEERS.quay_digest)
