"""Two harbor-cache nodes on one data directory and one PostgreSQL index, with real clients.

The PostgreSQL server is the tests' own throwaway cluster (`tests.pg_support`),
one fresh database per test. Each node is a real process (``twist``); the
upstream is the shared docker-registry behind the fault proxy, which counts
upstream GETs and slows bodies down so that clients surely arrive while a
download is in flight.

The cold-download test uses the "large" test layer (``HARBOR_IT_LARGE_MIB``,
120 MiB by default; the issue's 200 MiB figure is ``HARBOR_IT_LARGE_MIB=200``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile
import time

from twisted.trial.unittest import SynchronousTestCase

from tests import pg_support
from tests.integration import oci_support as oci
from tests.integration import push_support, support

LEASE_SECONDS = 3
CLIENTS = 50


class RoundRobinNginx(support._Peer):
    """nginx spreading requests over harbor-cache nodes one by one (no keep-alive to them: each request
    is balanced on its own), logging which node answered each request."""

    def __init__(self, backends, port=None, start=True):
        support.require("nginx")
        self.dir = tempfile.mkdtemp(prefix="harbor-it-lb-")
        os.chmod(self.dir, 0o755)
        self.port = port or support.free_port()
        self.hostport = "127.0.0.1:%d" % self.port
        self.url = "http://" + self.hostport
        self.access_log_path = os.path.join(self.dir, "access.log")
        self.log_path = os.path.join(self.dir, "error.log")
        self.config_path = os.path.join(self.dir, "nginx.conf")
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(self.dir, "tmp", sub))
        d = self.dir
        with open(self.config_path, "w") as f:
            f.write(
                "\n".join(
                    [
                        "user root;" if os.geteuid() == 0 else "",
                        "worker_processes 1;",
                        "daemon off;",
                        "pid %s/nginx.pid;" % d,
                        "error_log %s info;" % self.log_path,
                        "events { worker_connections 1024; }",
                        "http {",
                        "  log_format lb '$request_method $uri $status $upstream_addr';",
                        "  access_log %s lb;" % self.access_log_path,
                        "  client_body_temp_path %s/tmp/body;" % d,
                        "  proxy_temp_path %s/tmp/proxy;" % d,
                        "  fastcgi_temp_path %s/tmp/fastcgi;" % d,
                        "  uwsgi_temp_path %s/tmp/uwsgi;" % d,
                        "  scgi_temp_path %s/tmp/scgi;" % d,
                        "  upstream nodes { %s }" % " ".join("server %s;" % b for b in backends),
                        "  server {",
                        "    listen %s;" % self.hostport,
                        "    client_max_body_size 0;",
                        "    proxy_request_buffering off;",
                        "    proxy_buffering off;",
                        "    proxy_http_version 1.1;",
                        "    proxy_read_timeout 300s;",
                        "    proxy_set_header Host $http_host;",
                        "    location / { proxy_pass http://nodes; }",
                        "  }",
                        "}",
                        "",
                    ]
                )
            )
        self._launch(support._Daemon("nginx lb :%d" % self.port, os.path.join(self.dir, "nginx.out")), start)

    def start(self, timeout=20):
        self._daemon.start(["nginx", "-p", self.dir, "-e", self.log_path, "-c", self.config_path])
        self._daemon.wait_ready(self.url + "/health", timeout)

    def requests(self):
        """(method, path, status, upstream address) of every request so far."""
        try:
            with open(self.access_log_path) as f:
                return [tuple(line.split()[:4]) for line in f if len(line.split()) >= 4]
        except FileNotFoundError:
            return []


class TwoNodeTests(SynchronousTestCase):
    def setUp(self):
        support.require("docker-registry", "skopeo")
        self.db_url = pg_support.fresh_database_url(self)
        self.data_dir = tempfile.mkdtemp(prefix="harbor-it-shared-")
        self.addCleanup(shutil.rmtree, self.data_dir, True)

    def node(self, name, config, start=True):
        """A node on the shared data dir and database (``config``: the TOML without [index])."""
        index = support._toml_table(
            "[index]", {"url": self.db_url, "node_name": name, "lease_seconds": LEASE_SECONDS, "pool_size": 4}
        )
        srv = support.HarborServer(config + "\n" + index, data_dir=self.data_dir, start=start)
        self.addCleanup(srv.close)
        return srv

    def large_layer(self):
        reg, images = support.shared_upstream()
        layer = max(images["images"]["large"]["layers"], key=lambda l: l["size"])
        return reg, layer["digest"], layer["size"]

    def test_fifty_cold_gets_over_two_nodes_one_upstream_get(self):
        """50 concurrent cold GETs of one large blob, half on each node: 1 upstream GET, 50 correct bodies."""
        reg, digest, size = self.large_layer()
        path = "/v2/library/test/blobs/" + digest
        fault = oci.FaultUpstream(reg.url)
        self.addCleanup(fault.close)
        fault.set_rules({"path": digest, "mode": "rate", "rate": size // 3})  # ~3 s: everyone arrives in flight
        a = self.node("a", oci.harbor_config(fault.url))
        b = self.node("b", oci.harbor_config(fault.url))
        urls = [(a if i % 2 == 0 else b).url + path for i in range(CLIENTS)]
        results = oci.fetch_concurrently(urls, keep=False)
        for i, r in enumerate(results):
            self.assertEqual((r.status, r.error, r.length, r.digest), (200, None, size, digest), "client %d" % i)
        self.assertEqual(fault.wait_requests("GET", digest, 2, timeout=1), 1)
        # the commit (the temp file renamed into blobs/) follows the clients' last byte: give it time
        deadline = time.monotonic() + 10
        while True:
            left = {n: os.listdir(os.path.join(self.data_dir, "tmp", n)) for n in ("a", "b")}
            if left == {"a": [], "b": []} or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(left, {"a": [], "b": []})

    def test_node_killed_mid_download_the_other_serves_after_the_lease_expires(self):
        """A SIGKILLed mid-blob: B serves the blob whole; A's lease held B up for at most its lifetime."""
        reg, digest, size = self.large_layer()
        path = "/v2/library/test/blobs/" + digest
        fault = oci.FaultUpstream(reg.url)
        self.addCleanup(fault.close)
        fault.set_rules({"method": "GET", "path": digest, "mode": "rate", "rate": 20_000_000, "times": 1})
        a = self.node("a", oci.harbor_config(fault.url))
        b = self.node("b", oci.harbor_config(fault.url))
        thread, first = oci.start_fetch(a.url + path)
        oci.wait_metric(a, "harbor_cache_upstream_bytes", lambda v: v >= 5_000_000, front="oci")
        a._daemon._signal(signal.SIGKILL)
        a._daemon.proc.wait(10)
        thread.join(60)
        self.assertTrue(first.error is not None or first.length < size)
        started = time.monotonic()
        again = oci.fetch(b.url + path, keep=False)
        waited = time.monotonic() - started
        self.assertEqual((again.status, again.error, again.length, again.digest), (200, None, size, digest))
        self.assertEqual(fault.wait_requests("GET", digest, 2), 2)  # A's, cut short, then B's
        self.assertLess(waited, LEASE_SECONDS + 60)
        self.assertTrue(os.path.exists(oci.stored_blob(b, digest)))
        self.assertNotEqual(
            os.listdir(os.path.join(self.data_dir, "tmp", "a")),
            [],
            "A's partial download should still be in its own temp dir",
        )
        a.start()  # the same node name comes back: it cleans its own temp dir only
        self.assertEqual(os.listdir(os.path.join(self.data_dir, "tmp", "a")), [])

    def test_a_second_process_under_a_live_node_name_refuses_to_start(self):
        """Two processes, one data dir and index, one node_name: the second exits non-zero with one line naming the
        clash and the setting, leaving the first's download in progress alone; a clean stop frees the name."""
        config = support.oci_config("http://127.0.0.1:9", routes=["proxied/*"])
        first = self.node("a", config)
        in_progress = os.path.join(self.data_dir, "tmp", "a", "in-progress")
        with open(in_progress, "wb") as f:
            f.write(b"half a blob")
        twin = self.node("a", config, start=False)
        twin._daemon.start(twin.command(), env=twin.env, cwd=support.REPO_ROOT)
        status = twin._daemon.proc.wait(LEASE_SECONDS + 60)
        self.assertNotEqual(status, 0)
        events = [json.loads(line) for line in twin.log_text().splitlines() if line.startswith("{")]
        refusals = [e for e in events if e.get("log_format", "").startswith("harbor-cache refuses to start")]
        self.assertEqual(len(refusals), 1, twin.log_text()[-3000:])
        self.assertIn("[index] node_name", refusals[0]["reason"])
        self.assertIn("'a'", refusals[0]["reason"])
        self.assertEqual([e for e in events if "log_failure" in e], [])
        self.assertTrue(os.path.exists(in_progress), "the twin must not clean the live node's temp files")
        self.assertEqual(support.http("GET", first.url + "/readyz")[0], 200)

        first.stop()  # a clean stop gives the name up: the next process under it starts without waiting
        twin.start()
        self.assertNotIn("watching it for up to", twin.log_text().split("refuses to start")[-1])
        self.assertFalse(os.path.exists(in_progress))  # the name's own leftovers are cleaned as before

    def test_user_and_settings_made_on_one_node_apply_on_the_other(self):
        a = self.node("a", support.oci_config("http://127.0.0.1:9", routes=["proxied/*"]))
        b = self.node("b", support.oci_config("http://127.0.0.1:9", routes=["proxied/*"]))
        push_support.ensure_user(a, "carol", "carol-password", "read-write")
        self.assertTrue(b.login("carol", "carol-password"))
        token = a.login()
        status, _, body = support.http(
            "PUT",
            a.url + "/api/v1/config",
            {"Authorization": "Bearer " + token},
            {"entries": [{"key": "cache.tag_ttl_seconds", "value": "123"}]},
        )
        self.assertEqual(status, 200, body)
        deadline = time.monotonic() + 10
        while True:
            status, _, body = support.http("GET", b.url + "/api/v1/config", {"Authorization": "Bearer " + b.login()})
            document = json.loads(body)
            rows = document["entries"] if isinstance(document, dict) else document
            entries = {e["key"]: e["value"] for e in rows}
            if entries["cache.tag_ttl_seconds"] == "123" or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        self.assertEqual(entries["cache.tag_ttl_seconds"], "123")

    def test_skopeo_push_with_patch_and_put_on_different_nodes(self):
        """skopeo copy through a round-robin nginx: uploads are continued across nodes and the image reads back."""
        layout, _ = support.oci_layout()
        lb_port = support.free_port()
        config = support.oci_config(
            "http://127.0.0.1:9", routes=["proxied/*"], server={"public_url": "http://127.0.0.1:%d" % lb_port}
        )
        a = self.node("a", config)
        b = self.node("b", config)
        push_support.ensure_user(a, *push_support.WRITER, "read-write")
        lb = RoundRobinNginx([a.hostport, b.hostport], port=lb_port)
        self.addCleanup(lb.close)
        creds = "%s:%s" % push_support.WRITER
        cp = support.skopeo(
            "copy",
            "--dest-tls-verify=false",
            "--preserve-digests",
            "--dest-creds",
            creds,
            "oci:%s:single" % layout,
            "docker://%s/hosted/single:1" % lb.hostport,
            timeout=600,
        )
        self.assertEqual(cp.returncode, 0, cp.stderr[-2000:])
        by_session: dict[str, set] = {}
        for method, path, _status, upstream in lb.requests():
            m = re.search(r"/blobs/uploads/([0-9a-f-]{36})$", path)
            if m and method in ("PATCH", "PUT"):
                by_session.setdefault(m.group(1), set()).add(upstream)
        self.assertTrue(by_session, "no chunked upload went through the balancer: %r" % lb.requests()[:20])
        self.assertTrue(
            any(len(nodes) > 1 for nodes in by_session.values()),
            "no upload had its PATCH and PUT on different nodes: %r" % by_session,
        )
        for srv in (a, b):  # each node serves the pushed image whole
            cp = support.skopeo(
                "copy",
                "--src-tls-verify=false",
                "--src-creds",
                creds,
                "docker://%s/hosted/single:1" % srv.hostport,
                "oci:%s:check" % tempfile.mkdtemp(prefix="harbor-it-check-"),
                timeout=300,
            )
            self.assertEqual(cp.returncode, 0, cp.stderr[-2000:])
