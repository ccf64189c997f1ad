"""Issue 24.1 in real Chromium: what we serve outside ``/ui/`` never runs script on the console's origin.

Three ways markup reached the origin as a document before: a ``.pom`` a
read-write user deployed (plain HTTP ``PUT`` into the hosted Maven repository
``releases``) holding an XHTML ``<x:script>``, served as ``application/xml``;
the same file proxied from an upstream as ``.pom`` and ``.xml`` (nginx,
repository ``central``); and a manifest that a loopback OCI upstream labels
``text/html`` (header and ``mediaType``), served back as ``text/html``.
Chromium opens each address the way a user following a link would; each
script would set ``document.title`` (in an HTML document) and write
``localStorage`` of the origin, which is read back from ``/ui/``.  Neither
may happen, and the console itself (its own scripts, under its own policy)
still logs in and shows the dashboard.

The browser is headless, sandbox and GPU off, a fresh profile, downloads
refused; it only ever talks to 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import tempfile
import threading

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import oci_support as oci
from tests.integration import push_support, support
from tests.integration import test_console_chromium_it as chromium
from tests.integration.test_console_chromium_it import WAIT, _selenium

MARK = "pwned"


def _script(source: str) -> str:
    """What the payload does when it runs: title and storage of the origin."""
    return "document.title='%s-%s'; localStorage.setItem('%s', '%s')" % (MARK, source, MARK, source)


def _pom(source: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "  <modelVersion>4.0.0</modelVersion><groupId>org.evil</groupId><artifactId>evil</artifactId>"
        "<version>1.0</version>\n"
        '  <x:script xmlns:x="http://www.w3.org/1999/xhtml">%s</x:script>\n'
        "</project>\n" % _script(source)
    ).encode()


POM_PATH = "org/evil/evil/1.0/evil-1.0.pom"
XML_PATH = "org/evil/evil/1.0/evil-1.0-descriptor.xml"
#: the manifest: JSON that an HTML parser reads as a page with a script in it
MANIFEST = json.dumps(
    {"schemaVersion": 2, "mediaType": "text/html", "x": "<script>%s</script>" % _script("manifest")}
).encode()
MANIFEST_DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()


class _HostileRegistry(http.server.BaseHTTPRequestHandler):
    """An OCI upstream whose only manifest (``evil/app:page``) it calls ``text/html``."""

    def do_GET(self):
        if self.path in ("/v2/", "/v2"):
            self._answer(200, "application/json", b"{}")
        elif self.path in ("/v2/evil/app/manifests/page", "/v2/evil/app/manifests/" + MANIFEST_DIGEST):
            self._answer(200, "text/html", MANIFEST, {"Docker-Content-Digest": MANIFEST_DIGEST})
        else:
            self._answer(404, "application/json", b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')

    def do_HEAD(self):
        self.do_GET()

    def _answer(self, status, content_type, body, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, *args):
        pass


class Peers:
    """The hostile OCI upstream, nginx with the hostile .pom, the server, and Chromium."""

    def __init__(self):

        self.closers = []
        try:
            self.registry = http.server.ThreadingHTTPServer((support.LOOPBACK, 0), _HostileRegistry)
            self.closers.append(self.registry.server_close)
            self.closers.append(self.registry.shutdown)
            threading.Thread(target=self.registry.serve_forever, daemon=True).start()
            registry_url = "http://%s:%d" % (support.LOOPBACK, self.registry.server_address[1])
            self.maven_root = tempfile.mkdtemp(prefix="harbor-it-hostile-maven-")
            self.closers.append(lambda: shutil.rmtree(self.maven_root, ignore_errors=True))
            os.makedirs(os.path.join(self.maven_root, os.path.dirname(POM_PATH)))
            for path in (POM_PATH, XML_PATH):
                with open(os.path.join(self.maven_root, path), "wb") as f:
                    f.write(_pom("proxied"))
            for dirpath, _dirnames, filenames in os.walk(self.maven_root):
                os.chmod(dirpath, 0o755)
                for name in filenames:
                    os.chmod(os.path.join(dirpath, name), 0o644)
            self.maven = support.MavenUpstream(self.maven_root)
            self.closers.append(self.maven.close)
            config = support.oci_config(
                registry_url,
                server={"public_url": "http://127.0.0.1:@PORT@"},
                routes=["evil/*"],
                maven_repositories=[
                    {"id": "central", "url": self.maven.url, "private": False},
                    {"id": "releases", "type": "hosted", "private": False},
                ],
            )
            self.server = support.HarborServer(config)
            self.closers.append(self.server.close)
            push_support.ensure_user(self.server, *push_support.WRITER, "read-write")
            self.profile = tempfile.mkdtemp(prefix="harbor-it-chromium-")
            self.closers.append(lambda: shutil.rmtree(self.profile, ignore_errors=True))
            self.driver = chromium.start_chromium(self.profile, window="1280,900")
            self.closers.append(self.driver.quit)
            self.driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "deny"})
        except BaseException:
            self.close()
            raise

    def close(self):
        while self.closers:
            try:
                self.closers.pop()()
            except Exception:
                pass


class StoredScriptTests(SynchronousTestCase):
    def setUp(self):
        _selenium()
        self.p = oci.class_fixture(self, Peers, Peers.close)
        self.d = self.p.driver
        self.url = self.p.server.url
        # a clean origin: no marks from an earlier test
        self.d.get(self.url + "/ui/")
        self.d.execute_script("localStorage.clear()")

    def open_and_check(self, path, source):
        """Open ``path`` as a top-level page; the payload must not have run (title, and storage of the origin)."""
        self.d.get("about:blank")
        self.d.get(self.url + path)
        self.d.implicitly_wait(0)
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.d, WAIT).until(lambda d: d.execute_script("return document.readyState") == "complete")
        self.assertNotIn(MARK, self.d.title, "the script in %s ran" % path)
        # storage of the console's origin, read from the console itself
        self.d.get(self.url + "/ui/")
        self.assertIsNone(self.d.execute_script("return localStorage.getItem(%r)" % MARK), "%s wrote storage" % path)
        self.assertNotIn(MARK, self.d.title)

    def test_deployed_pom(self):
        """A .pom PUT by a read-write user: served with the sandbox policy, and opening it runs nothing."""
        status, _, body = support.http(
            "PUT",
            "%s/artifacts/releases/%s" % (self.url, POM_PATH),
            headers=dict(push_support.basic_header(*push_support.WRITER), **{"Content-Type": "application/xml"}),
            body=_pom("deployed"),
        )
        self.assertIn(status, (200, 201), body[:300])
        self.open_and_check("/artifacts/releases/" + POM_PATH, "deployed")
        status, headers, _ = support.http("GET", "%s/artifacts/releases/%s" % (self.url, POM_PATH))
        self.assertEqual((status, headers.get("Content-Type")), (200, "application/xml"))
        self.assertEqual(headers.get("Content-Security-Policy"), "default-src 'none'; sandbox")
        self.assertEqual(headers.get("X-Content-Type-Options"), "nosniff")

    def test_proxied_pom_and_xml(self):
        """The same file proxied from a Maven upstream as .pom and as .xml (a miss, then a hit from the cache)."""
        for path in (POM_PATH, XML_PATH):
            for _ in range(2):
                self.open_and_check("/artifacts/central/" + path, "proxied")
            status, headers, _ = support.http("GET", "%s/artifacts/central/%s" % (self.url, path))
            self.assertEqual((status, headers.get("Content-Type")), (200, "application/xml"))

    def test_proxied_manifest_labelled_html(self):
        """A manifest the upstream labels text/html: served as application/octet-stream, and nothing runs."""
        for path in ("/v2/evil/app/manifests/page", "/v2/evil/app/manifests/" + MANIFEST_DIGEST):
            self.open_and_check(path, "manifest")
            status, headers, body = support.http("GET", self.url + path)
            self.assertEqual((status, body), (200, MANIFEST))
            self.assertEqual(headers.get("Content-Type"), "application/octet-stream")
            self.assertEqual(headers.get("Content-Security-Policy"), "default-src 'none'; sandbox")

    def test_console_still_runs(self):
        """The console's own scripts run under its policy: log in, see the dashboard."""
        self.d.get(self.url + "/ui/#/login")
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        # (a re-render may replace an element between finding and reading it: look again)
        wait = WebDriverWait(self.d, WAIT, ignored_exceptions=[StaleElementReferenceException])
        wait.until(ec.visibility_of_element_located(("css selector", "#login-username"))).send_keys("admin")
        self.d.find_element("id", "login-password").send_keys(self.p.server.admin_password)
        self.d.find_element("id", "login-submit").click()
        wait.until(lambda d: any(e.text == "Dashboard" for e in d.find_elements("css selector", "main h1")))
