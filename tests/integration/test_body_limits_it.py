"""Request bodies and slow clients against a real harbor-cache over real sockets.

Issue 10 (12, 13) and issue 17 (2): bodies are decided from the headers before
they are read; an upload body goes from the socket into the session file
(never spooled, never held: RSS stays flat for a 200 MiB chunked PATCH);
headers have a deadline; connections are capped.

Issue 24 (4): a push the headers decide (over ``max_upload_bytes``, below the
free-space floor, a release redeploy) is answered with its body unsent; a push
that fills the disk midway is 507 and the server goes on.
"""

import base64
import hashlib
import json
import os
import socket
import threading
import time
import urllib.parse

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import oci_support, push_support, support
from tests.integration.test_disk_full_it import _mount_tmpfs

LIMITS = """
[limits]
header_timeout_seconds = 2.0
max_connections = 40
max_connections_per_address = 30
"""


def _rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def _read_response(sock, timeout=10):
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while length is not None and len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    if b"transfer-encoding: chunked" in head.lower():
        while not body.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        out = b""
        while body:
            size, _, rest = body.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            out, body = out + rest[:n], rest[n + 2 :]
        body = out
    return status, head, body


class BodyLimitTests(SynchronousTestCase):
    def setUp(self):
        self.server = support.HarborServer(support.oci_config("http://127.0.0.1:9", routes=["proxied/*"]) + LIMITS)
        self.addCleanup(self.server.close)
        self.auth = "Basic " + base64.b64encode(("admin:" + self.server.admin_password).encode()).decode()

    def connect(self, source="127.0.0.1"):
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=10, source_address=(source, 0))
        self.addCleanup(sock.close)
        return sock

    def _send_big(self, method, path, extra=""):
        """Announce a 1 GiB body, send 4 MiB of it (as far as the server reads); the reply and the tmp growth."""
        tmp = os.path.join(self.server.data_dir, "tmp")
        before = _dir_bytes(self.server.data_dir)
        sock = self.connect()
        sock.sendall(
            (
                "%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s"
                "Content-Length: 1073741824\r\n\r\n" % (method, path, extra)
            ).encode()
        )
        sock.settimeout(0.5)
        try:
            for _ in range(64):
                sock.sendall(b"x" * 65536)
        except OSError:
            pass  # the server closed on us: that is the point
        status, head, body = _read_response(sock)
        return status, head, body, _dir_bytes(self.server.data_dir) - before, tmp

    def test_anonymous_1gib_login_refused_from_headers(self):
        """POST /api/v1/auth/login announcing 1 GiB: 413 SIZE_INVALID, nothing written to disk."""
        status, head, body, grown, _ = self._send_big("POST", "/api/v1/auth/login")
        self.assertEqual(status, 413)
        self.assertEqual(json.loads(body)["errors"][0]["code"], "SIZE_INVALID")
        self.assertIn(b"Connection: close", head)
        self.assertLess(grown, 1 << 20)

    def test_anonymous_1gib_manifest_put_is_401_unread(self):
        """An anonymous 1 GiB manifest PUT gets its 401 before the body is read."""
        status, head, body, grown, _ = self._send_big("PUT", "/v2/hosted/x/manifests/1")
        self.assertEqual(status, 401)
        self.assertEqual(json.loads(body)["errors"][0]["code"], "UNAUTHORIZED")
        self.assertLess(grown, 1 << 20)

    def _head_only(self, method, path, length, auth=None):
        """Send a head announcing ``length`` bytes and no body; (status, body, seconds) of the answer."""
        sock = self.connect()
        started = time.monotonic()
        sock.sendall(
            (
                "%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nExpect: 100-continue\r\n"
                "Content-Length: %d\r\n\r\n" % (method, path, auth or self.auth, length)
            ).encode()
        )
        status, head, body = _read_response(sock, timeout=5)
        self.assertNotEqual(status, 100, "the body was asked for")
        self.assertIn(b"Connection: close", head)
        return status, body, time.monotonic() - started

    def _session(self):
        status, headers, _ = support.http(
            "POST", self.server.url + "/v2/hosted/big/blobs/uploads/", headers={"Authorization": self.auth}
        )
        self.assertEqual(status, 202)
        return headers.get("Location")

    def test_upload_over_the_limit_is_413_before_the_body(self):
        """PATCH, PUT and monolithic POST announcing 65 GiB (> max_upload_bytes, 64 GiB): 413 with no body sent."""
        location = self._session()
        digest = "sha256:" + "0" * 64
        before = _dir_bytes(self.server.data_dir)
        for method, path in (
            ("PATCH", location),
            ("PUT", location + "?digest=" + digest),
            ("POST", "/v2/hosted/big/blobs/uploads/?digest=" + digest),
        ):
            status, body, seconds = self._head_only(method, path, 65 << 30)
            self.assertEqual((method, status), (method, 413), body)
            self.assertEqual(json.loads(body)["errors"][0]["code"], "SIZE_INVALID")
            self.assertLess(seconds, 2)
        self.assertLess(_dir_bytes(self.server.data_dir) - before, 1 << 20)

    def test_upload_below_the_free_space_floor_is_507_before_the_body(self):
        """With cache.min_free_bytes above the free space, a 1 GiB PATCH is 507 INSUFFICIENT_STORAGE unread."""
        location = self._session()
        oci_support.set_runtime_settings(self.server, cache_min_free_bytes=1 << 59)
        status, body, seconds = self._head_only("PATCH", location, 1 << 30)
        self.assertEqual(status, 507, body)
        self.assertEqual(json.loads(body)["errors"][0]["code"], "INSUFFICIENT_STORAGE")
        self.assertLess(seconds, 2)

    def test_chunked_200mib_patch_rss_flat(self):
        """A chunked 200 MiB PATCH goes straight into the session file: RSS grows < 50 MiB; the digest checks."""
        status, headers, _ = support.http(
            "POST", self.server.url + "/v2/hosted/big/blobs/uploads/", headers={"Authorization": self.auth}
        )
        self.assertEqual(status, 202)
        location = headers.get("Location")
        pid = self.server.pid
        base = _rss_kib(pid)
        peak = [base]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], _rss_kib(pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        block = hashlib.sha256(b"seed").digest() * 32768  # 1 MiB, not all zeroes
        digest = hashlib.sha256()
        sock = self.connect()
        sock.sendall(
            (
                "PATCH %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nTransfer-Encoding: chunked\r\n"
                "Content-Type: application/octet-stream\r\n\r\n" % (location, self.auth)
            ).encode()
        )
        for i in range(200):
            piece = block[:-1] + bytes([i])
            digest.update(piece)
            sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
        sock.sendall(b"0\r\n\r\n")
        status, head, body = _read_response(sock, timeout=60)
        stop.set()
        sampler.join()
        self.assertEqual(status, 202, body)
        growth_mib = (peak[0] - base) / 1024
        print("chunked 200 MiB PATCH: RSS %d KiB -> peak %d KiB (+%.1f MiB)" % (base, peak[0], growth_mib))
        self.assertLess(growth_mib, 50, "RSS grew %.1f MiB" % growth_mib)
        loc = [
            line.split(b":", 1)[1].strip().decode()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"location:")
        ][0]
        sep = "&" if "?" in loc else "?"
        d = "sha256:" + digest.hexdigest()
        status, _, body = support.http(
            "PUT", self.server.url + loc + sep + "digest=" + urllib.parse.quote(d), headers={"Authorization": self.auth}
        )
        self.assertEqual(status, 201, body)

    def test_header_deadline(self):
        """Headers trickled one byte at a time: 408 REQUEST_TIMEOUT after header_timeout_seconds (2 s)."""
        sock = self.connect()
        started = time.monotonic()
        try:
            for ch in b"GET /health HTTP/1.1\r\nX-Slow: ":
                sock.sendall(bytes([ch]))
                time.sleep(0.2)
        except OSError:
            pass
        status, _, body = _read_response(sock)
        self.assertEqual(status, 408)
        self.assertEqual(json.loads(body)["errors"][0]["code"], "REQUEST_TIMEOUT")
        self.assertLess(time.monotonic() - started, 6)

    def test_connection_cap(self):
        """40 connections busy in a handler (limits.max_connections): a new client gets 503 TOO_MANY_CONNECTIONS;
        /health works again after."""
        held = []
        for i in range(40):
            sock = self.connect("127.0.0.%d" % (2 + i % 2))  # (30 per address at most)
            sock.sendall(
                (
                    "PUT /v2/hosted/busy/manifests/%d HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n"
                    "Content-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 100\r\n\r\n"
                    % (i, self.auth)
                ).encode()
            )
            held.append(sock)
        time.sleep(0.5)
        extra = self.connect()
        status, _, body = _read_response(extra)
        self.assertEqual(status, 503)
        self.assertEqual(json.loads(body)["errors"][0]["code"], "TOO_MANY_CONNECTIONS")
        for s in held:
            s.close()
        # (a paused socket notices its close once its handler reads again: after its password check)
        deadline = time.monotonic() + 20
        while True:
            status, _, _ = support.http("GET", self.server.url + "/health")
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        self.assertEqual(status, 200)

    def test_slow_header_connections_are_shed_for_a_new_client(self):
        """Two addresses hold all 40 connections (30 + 10) trickling headers: a 31st from the first is refused
        (per address); a third client gets 200, the connection that waited longest being closed with 503."""
        held = [self.connect("127.0.0.2") for _ in range(30)] + [self.connect("127.0.0.3") for _ in range(10)]
        for s in held:
            s.sendall(b"GET /health HTTP/1.1\r\nX-Slow: a")
        time.sleep(0.5)
        extra = self.connect("127.0.0.2")
        status, _, body = _read_response(extra)
        self.assertEqual(status, 503)
        self.assertEqual(json.loads(body)["errors"][0]["detail"], {"max_connections_per_address": 30})
        over = self.connect("127.0.0.3")
        over.sendall(b"GET /health HTTP/1.1\r\nX-Slow: a")
        time.sleep(0.3)
        status, _, body = support.http("GET", self.server.url + "/health")
        self.assertEqual(status, 200, body)
        status, _, body = _read_response(held[0])
        self.assertEqual(status, 503)
        self.assertEqual(json.loads(body)["errors"][0]["code"], "TOO_MANY_CONNECTIONS")


class OneAddressTests(SynchronousTestCase):
    def test_1100_slow_connections_from_one_address_leave_room_for_others(self):
        """Default limits: 127.0.0.2 opens 1,100 connections trickling headers; 127.0.0.1 still gets 200.

        It keeps max_connections_per_address (256) of them; the rest get 503 at once.
        (1,100 sockets here and at most 768 + a few in the server: ``ulimit -n`` must allow it.)
        """
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.assertGreater(soft, 1300, "ulimit -n too low for this test")
        srv = support.HarborServer(support.oci_config("http://127.0.0.1:9", routes=["proxied/*"]))
        self.addCleanup(srv.close)
        held = []
        refused = 0
        for _ in range(1100):
            sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10, source_address=("127.0.0.2", 0))
            self.addCleanup(sock.close)
            try:
                sock.sendall(b"GET /health HTTP/1.1\r\nX-Slow: a")
            except OSError:
                pass
            held.append(sock)
        status, _, body = support.http("GET", srv.url + "/health", timeout=10)
        self.assertEqual(status, 200, body)
        for sock in held:
            sock.setblocking(False)
            try:
                refused += sock.recv(64).startswith(b"HTTP/1.1 503")
            except OSError:
                pass
        self.assertEqual(refused, 1100 - 256)


class MavenDeployStreamTests(SynchronousTestCase):
    def test_release_redeploy_is_409_before_the_body(self):
        """redeploy = "deny": a second 50 MiB PUT of a release is 409 with its body unsent (it used to take 5 s)."""
        srv = support.HarborServer(support.maven_config([{"id": "releases", "type": "hosted"}]))
        self.addCleanup(srv.close)
        auth = push_support.admin_basic(srv)
        url = srv.url + "/artifacts/releases/org/example/lib/1.0/lib-1.0.jar"
        status, _, body = support.http("PUT", url, headers=auth, body=b"first")
        self.assertEqual(status, 201, body)
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        self.addCleanup(sock.close)
        started = time.monotonic()
        sock.sendall(
            (
                "PUT /artifacts/releases/org/example/lib/1.0/lib-1.0.jar HTTP/1.1\r\nHost: x\r\n"
                "Authorization: %s\r\nContent-Length: %d\r\n\r\n" % (auth["Authorization"], 50 << 20)
            ).encode()
        )
        status, _, body = _read_response(sock, timeout=5)
        self.assertEqual(status, 409, body)
        self.assertEqual(json.loads(body)["errors"][0]["code"], "CONFLICT")
        self.assertLess(time.monotonic() - started, 2)

    def test_large_deploy_streams_past_the_buffer_limit(self):
        """curl PUT of a 24 MiB jar (chunked and with Content-Length) into a hosted repository: stored whole.

        Deploys are streamed routes: the buffered-body limit (1 MiB) does not apply, the sha1 matches.
        """
        srv = support.HarborServer(support.maven_config([{"id": "releases", "type": "hosted"}]))
        self.addCleanup(srv.close)
        data = hashlib.sha256(b"jar").digest() * (24 << 15)
        path = os.path.join(srv.dir, "big.jar")
        with open(path, "wb") as f:
            f.write(data)
        creds = "admin:" + srv.admin_password
        for i, extra in enumerate(([], ["-H", "Transfer-Encoding: chunked"])):
            url = srv.url + "/artifacts/releases/org/example/big/1.%d/big-1.%d.jar" % (i, i)
            cp = support.run(
                ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", creds, "-T", path, *extra, url]
            )
            self.assertEqual(cp.stdout, "201", cp.stderr)
            status, _, body = support.http(
                "GET", url, headers={"Authorization": "Basic " + base64.b64encode(creds.encode()).decode()}
            )
            self.assertEqual(status, 200)
            self.assertEqual(hashlib.sha1(body).hexdigest(), hashlib.sha1(data).hexdigest())


class DiskFillsMidwayTests(SynchronousTestCase):
    def test_push_that_fills_the_disk_is_507_and_the_server_goes_on(self):
        """On a 96 MiB tmpfs, a chunked 150 MiB PATCH and Maven PUT run out of space midway: 507
        INSUFFICIENT_STORAGE in the error format, nothing kept in tmp/ or uploads/, and a small push works after."""
        mount = _mount_tmpfs(self)
        srv = support.HarborServer(
            support.oci_config(
                "http://127.0.0.1:9", routes=["proxied/*"], maven_repositories=[{"id": "releases", "type": "hosted"}]
            ),
            data_dir=os.path.join(mount, "data"),
            start=False,
        )
        self.addCleanup(srv.close)
        srv._daemon.start(srv.command(), env=srv.env, cwd=support.REPO_ROOT)
        srv._daemon.wait_ready(srv.url + "/health", 30, status=503)  # 96 MiB is below the default floor
        oci_support.set_runtime_settings(srv, cache_min_free_bytes=0)
        auth = push_support.admin_basic(srv)["Authorization"]
        status, headers, _ = support.http("POST", srv.url + "/v2/hosted/full/blobs/uploads/", {"Authorization": auth})
        self.assertEqual(status, 202)
        block = hashlib.sha256(b"fill").digest() * 32768  # 1 MiB
        for method, path in (
            ("PATCH", headers.get("Location")),
            ("PUT", "/artifacts/releases/org/example/full/1.0/full-1.0.jar"),
        ):
            sock = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
            self.addCleanup(sock.close)
            sock.sendall(
                (
                    "%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
                    % (method, path, auth)
                ).encode()
            )
            try:
                for _ in range(150):
                    sock.sendall(b"%x\r\n" % len(block) + block + b"\r\n")
                sock.sendall(b"0\r\n\r\n")
            except OSError:
                pass  # answered and closed midway
            status, _, body = _read_response(sock, timeout=30)
            self.assertEqual((method, status), (method, 507), body[:300])
            self.assertEqual(json.loads(body)["errors"][0]["code"], "INSUFFICIENT_STORAGE")
            leftovers = _dir_bytes(os.path.join(srv.data_dir, "tmp")) + _dir_bytes(
                os.path.join(srv.data_dir, "uploads")
            )
            self.assertEqual(leftovers, 0, method)
        status, _, _ = support.http("GET", srv.url + "/health")
        self.assertIn(status, (200, 503))
        data = b"small blob"
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        # The refused bodies' temp files are unlinked at once (leftovers above are 0), but their space returns
        # when the I/O thread closes them, a moment later on a loaded machine: until then a push is 507 too.
        deadline = time.monotonic() + 15
        while True:
            status, _, body = support.http(
                "POST",
                srv.url + "/v2/hosted/full/blobs/uploads/?digest=" + digest,
                {"Authorization": auth, "Content-Type": "application/octet-stream"},
                data,
            )
            if status != 507 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(status, 201, body)
