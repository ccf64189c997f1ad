"""Helpers shared by the OCI integration tests (pull, coalescing, faults) and bench/oci_bench.py.

What a test needs to look at harbor-cache from outside: its /metrics, its
data directory (committed blobs, temp files), runtime settings, and blob
bodies fetched by many concurrent clients.
"""

import hashlib
import http.client as httpclient
import json
import os
import re
import signal
import sqlite3
import sys
import tempfile
import threading
import time
import urllib.parse

from tests.integration import support

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
STALE_WARNING = '110 - "Response is Stale"'


def sha256_digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def harbor_config(upstream_url, **server):
    """oci_config with a [server] table (public_url on the chosen port) holding ``server``."""
    table = {"public_url": "http://127.0.0.1:@PORT@"}
    table.update(server)
    return support.oci_config(upstream_url, server=table)


# --------------------------------------------------------------------------
# metrics

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metrics(srv):
    """Every sample of GET /metrics as a list of (name, labels dict, value)."""
    status, _, body = support.http("GET", srv.url + "/metrics")
    if status != 200:
        raise AssertionError("/metrics answered %d" % status)
    out = []
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m:
            out.append((m.group(1), dict(_LABEL.findall(m.group(3) or "")), float(m.group(4))))
    return out


def metric(srv, name, **labels):
    """Sum of the samples of counter/gauge ``name`` (``_total`` added for counters) matching ``labels``."""
    total = 0.0
    for sample, got, value in metrics(srv):
        if sample not in (name, name + "_total"):
            continue
        if all(got.get(k) == v for k, v in labels.items()):
            total += value
    return total


def wait_metric(srv, name, predicate, timeout=10, **labels):
    """Poll ``metric`` until ``predicate(value)``; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = metric(srv, name, **labels)
        if predicate(value) or time.monotonic() >= deadline:
            return value
        time.sleep(0.02)


# --------------------------------------------------------------------------
# the data directory


def blob_file(srv, digest):
    algo, _, hexpart = digest.partition(":")
    return os.path.join(srv.data_dir, "blobs", algo, hexpart[:2], hexpart)


def stored_blob(srv, digest, timeout=10):
    """``blob_file``, once it exists (or ``timeout`` s have passed).

    A client gets the last byte once the digest matches; the fsync and the
    rename into the store come just after, so the file may appear a moment
    after the client is done.
    """
    path = blob_file(srv, digest)
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return path


def tmp_files(srv):
    d = os.path.join(srv.data_dir, "tmp")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def wait_tmp_empty(srv, timeout=5):
    """Poll DATA/tmp until empty (temp removal runs on the I/O thread); returns what is left."""
    deadline = time.monotonic() + timeout
    while True:
        left = tmp_files(srv)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def set_runtime_settings(srv, **values):
    """Set runtime settings (``cache_tag_ttl_seconds=0`` -> ``cache.tag_ttl_seconds``).

    Through ``PUT /api/v1/config`` when the management API answers; otherwise
    the server is stopped, the rows are written into DATA/index.sqlite's
    ``settings`` table, and it is started again (the index keeps everything).
    """
    entries = [{"key": k.replace("_", ".", 1), "value": str(v)} for k, v in values.items()]
    try:
        token = srv.login()
    except AssertionError:
        token = None
    if token is not None:
        status, _, body = support.http(
            "PUT", srv.url + "/api/v1/config", {"Authorization": "Bearer " + token}, {"entries": entries}
        )
        if status == 200:
            return "api"
        raise AssertionError("PUT /api/v1/config: %d %r" % (status, body[:300]))
    srv.stop()
    db = sqlite3.connect(os.path.join(srv.data_dir, "index.sqlite"))
    try:
        with db:
            for e in entries:
                db.execute(
                    "INSERT OR REPLACE INTO settings (key, value, updated_at) VALUES (?, ?, ?)",
                    (e["key"], e["value"], time.time()),
                )
    finally:
        db.close()
    srv.start()
    return "sqlite"


# --------------------------------------------------------------------------
# clients


class BodyResult:
    """What one client got: status, headers, length, digest of the bytes, the bytes (if kept), the error."""

    def __init__(self):
        self.status = None
        self.headers = None
        self.length = 0
        self.digest = None
        self.body = None
        self.error = None
        self.started = None
        self.finished = None


def fetch(url, headers=None, keep=True, chunk=1 << 20, delay=0.0, timeout=120, result=None):
    """GET ``url`` reading the body in chunks (``delay`` s between them); never raises.

    A body cut short (connection closed or reset before Content-Length bytes)
    leaves ``error`` set to the exception and ``length`` at what arrived.
    """
    r = result or BodyResult()
    u = urllib.parse.urlsplit(url)
    h = hashlib.sha256()
    parts = [] if keep else None
    r.started = time.monotonic()
    conn = httpclient.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request("GET", u.path, headers=headers or {})
        resp = conn.getresponse()
        r.status, r.headers = resp.status, resp.msg
        while True:
            data = resp.read(chunk)
            if not data:
                break
            r.length += len(data)
            h.update(data)
            if keep:
                parts.append(data)
            if delay:
                time.sleep(delay)
        expected = resp.getheader("Content-Length")
        if expected is not None and r.length != int(expected):
            r.error = httpclient.IncompleteRead(b"", int(expected) - r.length)
    except (OSError, httpclient.HTTPException) as e:
        r.error = e
    finally:
        conn.close()
        r.finished = time.monotonic()
    r.digest = "sha256:" + h.hexdigest()
    if keep:
        r.body = b"".join(parts)
    return r


def fetch_concurrently(urls, headers=None, keep=True, barrier=True):
    """GET each URL from its own thread, all released together; returns the BodyResults in order."""
    results = [BodyResult() for _ in urls]
    gate = threading.Barrier(len(urls)) if barrier else None

    def one(i, url):
        if gate is not None:
            gate.wait(30)
        fetch(url, headers, keep=keep, result=results[i])

    threads = [threading.Thread(target=one, args=(i, u), daemon=True) for i, u in enumerate(urls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return results


def start_fetch(url, headers=None, keep=False, delay=0.0, chunk=1 << 20):
    """``fetch`` in a background thread: returns (thread, BodyResult)."""
    r = BodyResult()
    t = threading.Thread(
        target=fetch, args=(url, headers), kwargs=dict(keep=keep, delay=delay, chunk=chunk, result=r), daemon=True
    )
    t.start()
    return t, r


def oci_error_codes(body):
    """The ``code`` of each entry of an OCI ``{"errors": [...]}`` body (AssertionError if not that shape)."""
    try:
        doc = json.loads(body)
        return [e["code"] for e in doc["errors"]]
    except (ValueError, KeyError, TypeError):
        raise AssertionError("not an OCI error body: %r" % (body[:300],)) from None


# --------------------------------------------------------------------------
# one fixture per test class (trial's SynchronousTestCase has no setUpClass)

_CURRENT = {"key": None, "value": None, "close": None}


def class_fixture(case, factory, close):
    """``factory()`` once for all the tests of ``case``'s class; ``close(value)`` when another class asks.

    Trial runs a class's tests one after another, so only one class fixture
    is alive at a time; the last one is closed at exit.
    """
    key = type(case)
    if _CURRENT["key"] is not key:
        release_class_fixture()
        value = factory()
        _CURRENT.update(key=key, value=value, close=close)
    return _CURRENT["value"]


def release_class_fixture():
    if _CURRENT["close"] is not None:
        closer, value = _CURRENT["close"], _CURRENT["value"]
        _CURRENT.update(key=None, value=None, close=None)
        closer(value)


support._CLOSE_AT_EXIT.append(release_class_fixture)


# --------------------------------------------------------------------------
# pushing without skopeo


def push_raw(layout, registry_url, name, ref, tag):
    """Push layout ref ``ref`` (and, for an index, every child) to ``name:tag`` over the registry API.

    skopeo's ``oci:`` transport only finds descriptors with OCI media
    types, so a layout written with ``--docker-media-types`` cannot go
    through `support.push_layout`; this PUTs the same bytes (digests
    unchanged) with monolithic blob uploads.
    """
    with open(os.path.join(layout, "index.json")) as f:
        desc = [m for m in json.load(f)["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == ref][0]

    def blob(digest):
        with open(os.path.join(layout, "blobs", *digest.split(":", 1)), "rb") as f:
            return f.read()

    def put_blob(digest):
        status, headers, body = support.http("POST", "%s/v2/%s/blobs/uploads/" % (registry_url, name))
        if status != 202:
            raise AssertionError("upload start: %d %r" % (status, body))
        location = headers["Location"]
        if location.startswith("/"):
            location = registry_url + location
        sep = "&" if "?" in location else "?"
        status, _, body = support.http(
            "PUT", location + sep + "digest=" + digest, {"Content-Type": "application/octet-stream"}, blob(digest)
        )
        if status != 201:
            raise AssertionError("upload %s: %d %r" % (digest, status, body))

    def put_manifest(d, reference):
        data = blob(d["digest"])
        doc = json.loads(data)
        for child in doc.get("manifests", []):
            put_manifest(child, child["digest"])
        for b in [doc["config"]] + doc["layers"] if "config" in doc else []:
            put_blob(b["digest"])
        status, _, body = support.http(
            "PUT", "%s/v2/%s/manifests/%s" % (registry_url, name, reference), {"Content-Type": d["mediaType"]}, data
        )
        if status != 201:
            raise AssertionError("manifest %s: %d %r" % (reference, status, body))

    put_manifest(desc, tag)


# --------------------------------------------------------------------------
# the fault-injecting upstream (its server is tests/integration/fault_upstream.py)


class FaultUpstream(support._Counting):
    """The fault proxy as a daemon on a free loopback port, with its rules and access log.

    ``url``/``hostport`` point at it; ``count_requests``/``wait_requests`` read
    its access log like `support.Registry`'s. ``stop()``/``start()`` keep the
    port (an outage and its recovery); ``kill()`` is SIGKILL (a crash).
    """

    def __init__(self, upstream_url, start=True):
        self.upstream_url = upstream_url
        self.dir = tempfile.mkdtemp(prefix="harbor-it-fault-")
        self.port = support.free_port()
        self.hostport = "%s:%d" % (support.LOOPBACK, self.port)
        self.url = "http://" + self.hostport
        self.access_log_path = os.path.join(self.dir, "access.log")
        self.log_path = os.path.join(self.dir, "fault.out")
        self._launch(support._Daemon("fault-upstream :%d" % self.port, self.log_path), start)

    def start(self, timeout=20):
        env = dict(os.environ)
        env["PYTHONPATH"] = support.REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._daemon.start(
            [
                sys.executable,
                "-m",
                "tests.integration.fault_upstream",
                "--port",
                str(self.port),
                "--upstream",
                self.upstream_url,
                "--log",
                self.access_log_path,
            ],
            env=env,
            cwd=support.REPO_ROOT,
        )
        self._daemon.wait_ready(self.url + "/_fault/ping", timeout)

    def stop(self, grace=5):
        self._daemon.stop(grace)

    def kill(self):
        """SIGKILL: connections in progress are reset, as when an upstream crashes."""
        if self._daemon.running():
            self._daemon._signal(signal.SIGKILL)
            self._daemon.proc.wait(10)
        self._daemon.stop()

    def set_rules(self, *rules):
        """Replace the rules (dicts as in fault_upstream's docstring)."""
        status, _, body = support.http("POST", self.url + "/_fault/rules", body=list(rules))
        if status != 200:
            raise AssertionError("setting fault rules: %d %r" % (status, body))

    def clear_rules(self):
        support.http("DELETE", self.url + "/_fault/rules")
