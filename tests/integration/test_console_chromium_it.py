"""The web console in real Chromium: Debian's chromium and chromedriver, driven by Selenium.

One live server (support.HarborServer) with the loopback peers behind it:
distribution's registry (library/test: a single image, a multi-arch index and
a 120 MiB layer) reached through the fault proxy, which throttles that layer
so a cold pull lasts long enough to watch; nginx serving a small Maven
directory that includes a file and a directory whose names carry markup, as a
public repository ``central`` and a private one ``secret``.  A hosted image
``team/app:v1`` is pushed with an annotation that carries markup.

Every test is one user story clicked through in the browser; each saves
screenshots (``$HARBOR_SCREENSHOTS``, default ``_trial_temp/screenshots``;
with ``HARBOR_UPDATE_DOCS=1`` also into ``docs/screenshots/``, the copies
the README shows).  The browser is headless, sandbox and GPU off, no
background networking, a fresh profile; it only ever talks to 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.parse
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import oci_support as oci
from tests.integration import support

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

MARKUP_FILE = '<img src=x onerror="window.__xss=1">.txt'
MARKUP_DIR = "<svg onload=window.__xss=2>"
MARKUP_ANNOTATION = '<img src=x onerror="window.__xss=3"><b>bold</b>'
HOSTED_REPO = "team/app"
HOSTED_TAG = "v1"
LARGE_RATE = 12 << 20  # bytes/s: the 120 MiB layer takes ~10 s, long enough to watch it on the dashboard
WAIT = 15

DOCS_SHOTS = os.path.join(support.REPO_ROOT, "docs", "screenshots")


def _selenium():
    try:
        from selenium import webdriver  # noqa: F401
    except ImportError:
        support.unavailable("selenium is not installed (pip install selenium)")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            support.unavailable("%s is missing (apt-get install chromium chromium-driver)" % path)


def _maven_root():
    """A small Maven directory: harness/small from the shared one, plus names that carry markup."""
    src = support.maven_repo_dir()
    root = tempfile.mkdtemp(prefix="harbor-it-console-maven-")
    os.chmod(root, 0o755)
    shutil.copytree(os.path.join(src, "harness", "small"), os.path.join(root, "harness", "small"))
    odd = os.path.join(root, "harness", "xss", "1.0")
    os.makedirs(odd)
    with open(os.path.join(odd, MARKUP_FILE), "w") as f:
        f.write("markup in a file name\n")
    os.makedirs(os.path.join(root, "harness", MARKUP_DIR))
    with open(os.path.join(root, "harness", MARKUP_DIR, "inside.txt"), "w") as f:
        f.write("a file in a directory named with markup\n")
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
    return root


def _quote(path):
    return urllib.parse.quote(path, safe="/")


def _push_hosted(server, repo=HOSTED_REPO, tags=(HOSTED_TAG,)):
    """team/app:v1 (or ``tags`` of ``repo``), pushed through /v2 with Basic credentials; its manifest carries a markup
    annotation."""
    auth = {
        "Authorization": "Basic " + __import__("base64").b64encode(("admin:" + server.admin_password).encode()).decode()
    }
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    layer = os.urandom(300 * 1024)
    digests = []
    for blob in (config, layer):
        digest = oci.sha256_digest(blob)
        status, _, body = support.http(
            "POST",
            "%s/v2/%s/blobs/uploads/?digest=%s" % (server.url, repo, digest),
            headers=dict(auth, **{"Content-Type": "application/octet-stream"}),
            body=blob,
        )
        assert status == 201, (status, body)
        digests.append(digest)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digests[0],
                "size": len(config),
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digests[1], "size": len(layer)}
            ],
            "annotations": {"org.opencontainers.image.description": MARKUP_ANNOTATION},
        }
    ).encode()
    for tag in tags:
        status, _, body = support.http(
            "PUT",
            "%s/v2/%s/manifests/%s" % (server.url, repo, tag),
            headers=dict(auth, **{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}),
            body=manifest,
        )
        assert status == 201, (status, body)


class Console:
    """Everything the tests share: peers, the server, the browser."""

    def __init__(self):

        self.closers = []
        try:
            self.registry, self.images = support.shared_upstream()
            self.fault = oci.FaultUpstream(self.registry.url)
            self.closers.append(self.fault.close)
            self.maven_root = _maven_root()
            self.closers.append(lambda: shutil.rmtree(self.maven_root, ignore_errors=True))
            self.maven = support.MavenUpstream(self.maven_root)
            self.closers.append(self.maven.close)
            # library/* is proxied (read-only); every other name, team/app included, is hosted
            config = support.oci_config(
                self.fault.url,
                server={"public_url": "http://127.0.0.1:@PORT@"},
                routes=["library/*"],
                maven_repositories=[
                    {"id": "central", "url": self.maven.url, "private": False},
                    {"id": "secret", "url": self.maven.url, "private": True},
                ],
            )
            self.server = support.HarborServer(config)
            self.closers.append(self.server.close)
            self.prime()
            self.profile = tempfile.mkdtemp(prefix="harbor-it-chromium-")
            self.closers.append(lambda: shutil.rmtree(self.profile, ignore_errors=True))
            self.driver = start_chromium(self.profile, window="1280,900", logs=True)
            self.closers.append(self.driver.quit)
            self.downloads = os.path.join(self.profile, "downloads")
            os.makedirs(self.downloads)
            self.driver.execute_cdp_cmd(
                "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": self.downloads}
            )
        except BaseException:
            self.close()
            raise

    def prime(self):
        """Put content in the cache as clients would: Maven files, the multi-arch index, a hosted push."""
        for repo in ("central", "secret"):
            for path in (
                "harness/small/1.0/small-1.0.jar",
                "harness/small/1.0/small-1.0.pom",
                "harness/xss/1.0/" + MARKUP_FILE,
                "harness/%s/inside.txt" % MARKUP_DIR,
            ):
                if repo == "secret" and "xss" in path:
                    continue
                headers = {}
                if repo == "secret":
                    headers["Authorization"] = "Bearer " + self.artifact_token()
                status, _, body = support.http(
                    "GET", "%s/artifacts/%s/%s" % (self.server.url, repo, _quote(path)), headers=headers
                )
                assert status == 200, (repo, path, status, body[:200])
        accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"
        status, _, _ = support.http(
            "GET", self.server.url + "/v2/library/test/manifests/multi", headers={"Accept": accept}
        )
        assert status == 200, status
        _push_hosted(self.server)

    def artifact_token(self):
        import base64

        basic = base64.b64encode(("admin:" + self.server.admin_password).encode()).decode()
        status, _, body = support.http(
            "POST",
            self.server.url + "/token",
            headers={"Authorization": "Basic " + basic, "Content-Type": "application/x-www-form-urlencoded"},
            body="scope=artifacts:read",
        )
        assert status == 200, (status, body)
        return body.decode().strip()

    def close(self):
        while self.closers:
            try:
                self.closers.pop()()
            except Exception:
                pass


class ConsoleTests(SynchronousTestCase):
    """User stories of issue 13, point 6, clicked through in Chromium."""

    def setUp(self):
        _selenium()
        self.c = oci.class_fixture(self, Console, Console.close)
        self.d = self.c.driver
        self.url = self.c.server.url
        self.d.set_window_size(1280, 900)
        self.shots = os.environ.get("HARBOR_SCREENSHOTS") or os.path.abspath("screenshots")
        os.makedirs(self.shots, exist_ok=True)

    # -- helpers ------------------------------------------------------------------------

    def wait(self, condition, timeout=WAIT, message=""):
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        # (a re-render may replace an element between finding and reading it: look again)
        return WebDriverWait(
            self.d, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
        ).until(condition, message)

    def css(self, selector, timeout=WAIT):
        from selenium.webdriver.support import expected_conditions as ec

        return self.wait(
            ec.visibility_of_element_located(("css selector", selector)), timeout, "no visible %s" % selector
        )

    def all(self, selector):
        return self.d.find_elements("css selector", selector)

    def heading(self, text):
        self.wait(
            lambda d: any(e.text == text for e in d.find_elements("css selector", "main h1")),
            message="heading %r never shown" % (text,),
        )

    def open(self, hash_):
        """Type an address: a full load of /ui/#/..., as a bookmark or a reload would do."""
        self.d.get("about:blank")
        self.d.get(self.url + "/ui/" + hash_)

    def shot(self, name):
        self.wait(lambda d: d.execute_script("return document.readyState") == "complete")
        path = os.path.join(self.shots, name + ".png")
        self.d.save_screenshot(path)
        if os.environ.get("HARBOR_UPDATE_DOCS") == "1":
            os.makedirs(DOCS_SHOTS, exist_ok=True)
            shutil.copy(path, os.path.join(DOCS_SHOTS, name + ".png"))

    def login(self, username="admin", password=None):
        self.open("#/login")
        self.css("#login-username").send_keys(username)
        self.d.find_element("id", "login-password").send_keys(password or self.c.server.admin_password)
        self.d.find_element("id", "login-submit").click()
        self.heading("Dashboard")

    def logout(self):
        self.open("#/maven")
        self.d.execute_script("sessionStorage.clear()")
        self.open("#/maven")

    def click_link(self, text, scope="main"):
        """Click the first link reading ``text`` once it is there."""
        links = self.wait(
            lambda d: [a for a in self.all(scope + " a") if a.text == text], message="no link %r in %s" % (text, scope)
        )
        links[0].click()

    def crumbs(self, expected):
        """Wait until the breadcrumbs read ``expected`` (the listing of that directory is rendered)."""
        self.wait(
            lambda d: [li.text for li in self.all(".crumbs li")] == expected and self.all("table.entries"),
            message="breadcrumbs never read %r" % (expected,),
        )

    def hash_params(self):
        fragment = urllib.parse.urlsplit(self.d.current_url).fragment
        return dict(urllib.parse.parse_qsl(fragment.partition("?")[2]))

    def assert_no_injection(self):
        """Nothing that came as markup ran or became an element."""
        self.assertIsNone(self.d.execute_script("return window.__xss === undefined ? null : window.__xss"))
        self.assertEqual(self.all("main img, main svg, main b, [onerror], [onload]"), [])

    def downloaded(self, name, timeout=WAIT):
        """The bytes of ``name`` once Chromium has finished saving it in the download directory."""
        path = os.path.join(self.c.downloads, name)
        self.wait(
            lambda d: os.path.exists(path) and not os.path.exists(path + ".crdownload"),
            timeout,
            "%s was not downloaded" % name,
        )
        with open(path, "rb") as f:
            data = f.read()
        os.unlink(path)
        return data

    def assert_icon(self, row, svg):
        """The row's icon shows ``icons/<svg>`` (issue 23.3): the computed background image names it, it is not
        repeated, and the browser fetched it."""
        icon = row.find_element("css selector", ".icon")
        image = self.d.execute_script("return getComputedStyle(arguments[0]).backgroundImage", icon)
        self.assertRegex(image, r'^url\("[^"]*/ui/icons/%s"\)$' % svg.replace(".", r"\."))
        self.assertEqual(
            self.d.execute_script("return getComputedStyle(arguments[0]).backgroundRepeat", icon), "no-repeat"
        )
        self.wait(
            lambda d: d.execute_script(
                "return performance.getEntriesByType('resource').some(e => e.name.endsWith('/ui/icons/' + arguments[0]))",
                svg,
            ),
            message="icons/%s was never fetched" % svg,
        )

    def api(self, method, path, body=None):
        token = self.c.server.login()
        status, _, data = support.http(method, self.url + path, headers={"Authorization": "Bearer " + token}, body=body)
        return status, (json.loads(data) if data else None)

    # -- stories ------------------------------------------------------------------------

    def test_a_login_logout_and_expired_session(self):
        """Wrong password: inline error; right one: dashboard; token only in sessionStorage; a 401 returns to login."""
        self.logout()
        self.open("#/login")
        self.css("#login-username").send_keys("admin")
        self.d.find_element("id", "login-password").send_keys("wrong")
        self.d.find_element("id", "login-submit").click()
        self.assertIn("Wrong username or password", self.css("#login-form .error").text)
        self.shot("login")
        self.login()
        token = self.d.execute_script("return sessionStorage.getItem('hc.token')")
        self.assertTrue(token and token.count(".") == 2)
        self.assertEqual(self.d.execute_script("return localStorage.length"), 0)
        self.assertNotIn(token, self.d.current_url)
        self.assertTrue(self.d.execute_script("return !!sessionStorage.getItem('hc.artifactToken')"))
        # An expired / revoked token: the next API call answers 401 and the login form comes back.
        self.d.execute_script("sessionStorage.setItem('hc.token', 'x.e30.y')")
        self.open("#/cache")
        self.heading("Log in")
        self.assertIn("session ended", self.css("main .notice").text)
        self.assertIsNone(self.d.execute_script("return sessionStorage.getItem('hc.token')"))
        self.login()
        self.d.find_element("id", "logout").click()
        self.heading("Log in")
        self.assertIsNone(self.d.execute_script("return sessionStorage.getItem('hc.token')"))

    def test_b_maven_browse_to_a_file(self):
        """Repository selector, breadcrumbs, up, icons, sizes, info panel (sha1 of the file), download, back and reload."""
        self.logout()
        self.open("#/maven")
        self.heading("Maven repositories")
        select = self.css("#repo-select")
        self.assertEqual(
            [o.text for o in select.find_elements("css selector", "option")], ["central", "secret (private)"]
        )
        up = self.css("#up")
        self.assertEqual(up.tag_name, "button")
        self.assertFalse(up.is_enabled(), "up is disabled at the root")
        self.click_link("harness")
        self.wait(lambda d: self.hash_params().get("path") == "harness")
        self.crumbs(["central", "harness"])
        self.shot("maven-browse")
        rows = {r.find_element("css selector", "a.entry").text: r for r in self.all("table.entries tbody tr")}
        self.assertIn("small", rows)
        self.assertEqual(rows["small"].find_elements("css selector", "td")[1].text, "", "directories have no size")
        self.assertEqual(rows["small"].find_element("css selector", ".icon").get_attribute("class"), "icon icon-dir")
        self.assert_icon(rows["small"], "folder.svg")
        self.click_link("small")
        self.wait(lambda d: self.hash_params().get("path") == "harness/small")
        self.crumbs(["central", "harness", "small"])
        self.click_link("1.0")
        self.wait(lambda d: self.hash_params().get("path") == "harness/small/1.0")
        self.crumbs(["central", "harness", "small", "1.0"])
        jar_row = [r for r in self.all("table.entries tbody tr") if "small-1.0.jar" in r.text][0]
        self.assertEqual(jar_row.find_element("css selector", ".icon").get_attribute("class"), "icon icon-file")
        self.assert_icon(jar_row, "file.svg")
        local = os.path.join(self.c.maven_root, "harness/small/1.0/small-1.0.jar")
        size = os.path.getsize(local)
        self.assertRegex(jar_row.find_elements("css selector", "td")[1].text, r"^\d+(\.\d\d KB| B)$")
        self.click_link("small-1.0.jar")
        panel = self.css("#info-panel")
        with open(local, "rb") as f:
            data = f.read()
        fields = {
            dt.text: dd
            for dt, dd in zip(
                panel.find_elements("css selector", "dt"), panel.find_elements("css selector", "dd"), strict=False
            )
        }
        self.assertEqual(fields["SHA-1"].find_element("css selector", "code").text, hashlib.sha1(data).hexdigest())
        self.assertEqual(fields["SHA-256"].find_element("css selector", "code").text, hashlib.sha256(data).hexdigest())
        self.assertEqual(fields["Content type"].find_element("css selector", "code").text, "application/java-archive")
        self.assertIn("KB" if size >= 1024 else "B", fields["Size"].text)
        # timestamps in the browser's zone: the <time> keeps the ISO value, the text is toLocaleString()
        stamp = fields["Last modified"].find_element("css selector", "time")
        self.assertRegex(stamp.get_attribute("datetime"), r"Z$")
        self.assertEqual(
            stamp.text,
            self.d.execute_script("return new Date(arguments[0]).toLocaleString()", stamp.get_attribute("datetime")),
        )
        self.shot("maven-info")
        # the download link, followed by the browser itself (fetch of its href) and checked byte for byte
        link = self.d.find_element("id", "download-link")
        self.assertEqual(
            urllib.parse.urlsplit(link.get_attribute("href")).path, "/artifacts/central/harness/small/1.0/small-1.0.jar"
        )
        got = self.d.execute_async_script(
            """
            const done = arguments[arguments.length - 1];
            fetch(arguments[0]).then(r => r.arrayBuffer()).then(b => crypto.subtle.digest('SHA-1', b))
              .then(h => done(Array.from(new Uint8Array(h)).map(x => x.toString(16).padStart(2, '0')).join('')))
              .catch(e => done('error ' + e));""",
            link.get_attribute("href"),
        )
        self.assertEqual(got, hashlib.sha1(data).hexdigest())
        link.click()
        self.assertEqual(self.downloaded("small-1.0.jar"), data)
        # reload keeps the place (repository, path and the open file); back goes to the previous directory
        self.d.refresh()
        self.css("#info-panel")
        self.assertEqual(
            self.hash_params(),
            {"repo": "central", "path": "harness/small/1.0", "file": "harness/small/1.0/small-1.0.jar"},
        )
        self.d.back()
        self.wait(lambda d: "file" not in self.hash_params())
        self.d.back()
        self.wait(lambda d: self.hash_params().get("path") == "harness/small")
        self.crumbs(["central", "harness", "small"])
        # up from parentPath
        self.css("#up").click()
        self.crumbs(["central", "harness"])
        self.css("#up").click()
        self.crumbs(["central"])
        self.assertFalse(self.css("#up").is_enabled())

    def test_c_markup_in_names_is_text(self):
        """A Maven file and directory and an image annotation whose names carry markup are shown as text."""
        self.logout()
        self.open("#/maven?repo=central&path=harness")
        self.css("table.entries")
        names = [a.text for a in self.all("a.entry")]
        self.assertIn(MARKUP_DIR, names)
        self.click_link(MARKUP_DIR)
        self.crumbs(["central", "harness", MARKUP_DIR])
        self.assert_no_injection()
        self.open("#/maven?repo=central&path=harness/xss/1.0")
        self.css("table.entries")
        self.click_link(MARKUP_FILE)
        panel = self.css("#info-panel")
        self.assertEqual(panel.find_element("css selector", "h2").text, MARKUP_FILE)
        self.assert_no_injection()
        self.shot("maven-markup-names")
        self.login()
        self.open("#/images?repo=%s&ref=%s" % (HOSTED_REPO, HOSTED_TAG))
        cell = self.css("table.annotations td.annotation")
        self.assertEqual(cell.text, MARKUP_ANNOTATION)
        self.assert_no_injection()

    def test_d_private_repository(self):
        """A private repository asks to log in, and browses once logged in (Kagami token of the tab)."""
        self.logout()
        self.open("#/maven?repo=secret")
        self.assertIn("private", self.css("main .notice").text)
        self.login()
        self.open("#/maven?repo=secret&path=harness/small/1.0")
        self.css("table.entries")
        self.assertIn("small-1.0.jar", [a.text for a in self.all("a.entry")])
        # the file of a private repository downloads with the tab's token (the link itself carries none)
        self.click_link("small-1.0.pom")
        link = self.css("#download-link")
        self.assertNotIn("token", link.get_attribute("href"))
        status, _, _ = support.http("GET", link.get_attribute("href"))
        self.assertEqual(status, 401)
        link.click()
        with open(os.path.join(self.c.maven_root, "harness/small/1.0/small-1.0.pom"), "rb") as f:
            self.assertEqual(self.downloaded("small-1.0.pom"), f.read())

    def test_e_multi_arch_image(self):
        """Images list (hosted and cached), tags, the index's two platforms, a platform's layers and total."""
        self.login()
        self.click_link("Images", "nav")
        self.heading("Container images")
        rows = self.wait(lambda d: self.all("table tbody tr"), message="no repository listed")
        repos = {r.find_element("css selector", "a").text: r.text for r in rows}
        self.assertIn("hosted", repos[HOSTED_REPO])
        self.assertIn("cached", repos["library/test"])
        self.shot("images")
        self.click_link("library/test")
        self.heading("library/test")
        self.click_link("multi")
        self.heading("library/test:multi")
        multi = self.c.images["images"]["multi"]
        self.assertEqual(self.css("#manifest-media-type").text, "application/vnd.oci.image.index.v1+json")
        self.assertEqual(self.css("#manifest-digest code").text, multi["digest"])
        platforms = [r.find_element("css selector", "a").text for r in self.all("table.platforms tbody tr")]
        self.assertEqual(sorted(platforms), ["linux/amd64", "linux/arm64/v8"])
        pulls = [c.text for c in self.all("dd.pull code")]
        self.assertEqual(
            pulls,
            [
                "docker pull %s/library/test:multi" % self.c.server.hostport,
                "podman pull %s/library/test:multi" % self.c.server.hostport,
            ],
        )
        self.shot("image-index")
        self.click_link("linux/arm64/v8")
        arm = multi["manifests"]["arm64"]
        self.wait(lambda d: self.hash_params().get("ref") == arm["digest"])
        self.css("table.layers")
        self.assertEqual(len(self.all("table.layers tr.layer")), len(arm["layers"]))
        total = sum(layer["size"] for layer in arm["layers"])
        self.assertEqual(
            self.css("#layers-total").text,
            "%.2f MB" % (total / 1048576) if total >= 1048576 else "%.2f KB" % (total / 1024),
        )
        self.shot("image-manifest")

    def test_f_delete_hosted_tag(self):
        """A hosted tag has a Delete button behind a confirmation; cancel keeps it, confirm removes it."""
        _push_hosted(self.c.server)  # (again: tests may run alone)
        self.login()
        self.open("#/images?repo=" + HOSTED_REPO)
        self.heading(HOSTED_REPO)
        button = self.css("tr[data-tag='%s'] button.danger" % HOSTED_TAG)
        button.click()
        self.css("dialog.confirm button[data-confirm='no']").click()
        self.assertTrue(self.all("tr[data-tag='%s']" % HOSTED_TAG))
        button.click()
        self.shot("image-delete-confirm")
        self.css("dialog.confirm button[data-confirm='yes']").click()
        self.wait(lambda d: not self.all("tr[data-tag='%s']" % HOSTED_TAG))
        status, _ = self.api("GET", "/api/v1/images/manifest?repository=%s&reference=%s" % (HOSTED_REPO, HOSTED_TAG))
        self.assertEqual(status, 404)
        _push_hosted(self.c.server)

    def test_g_users(self):
        """Create a user; a taken name shows the API's error inline; change the role; delete."""
        self.login()
        self.click_link("Users", "nav")
        self.heading("Users")
        for _ in range(2):
            self.css("#new-username").send_keys("carol")
            self.d.find_element("id", "new-password").send_keys("carol-pw")
            self.d.find_element("id", "create-user").find_element("css selector", "button[type=submit]").click()
            self.css("tr[data-username='carol']")
        err = self.css("#create-user-error")
        self.assertIn("already exists", err.text.lower())
        self.shot("users")
        row = self.css("tr[data-username='carol']")
        from selenium.webdriver.support.ui import Select

        Select(row.find_element("css selector", "select")).select_by_value("read-write")
        [b for b in row.find_elements("css selector", "button") if b.text == "Save role"][0].click()
        self.wait(
            lambda d: Select(self.css("tr[data-username='carol'] select")).first_selected_option.text == "read-write"
        )
        status, users = self.api("GET", "/api/v1/users")
        self.assertEqual([u["role"] for u in users if u["username"] == "carol"], ["read-write"])
        row = self.css("tr[data-username='carol']")
        row.find_element("css selector", "input[type=password]").send_keys("carol-new-pw")
        [b for b in row.find_elements("css selector", "button") if b.text == "Set password"][0].click()
        self.wait(
            lambda d: (
                support.http(
                    "POST", self.url + "/api/v1/auth/login", body={"username": "carol", "password": "carol-new-pw"}
                )[0]
                == 200
            ),
            message="the new password never worked",
        )
        self.css("tr[data-username='carol'] button[aria-label='Delete user carol']").click()
        self.assertIn("Delete the user carol", self.css("dialog.confirm p").text)
        self.css("dialog.confirm button[data-confirm='yes']").click()
        self.wait(lambda d: not self.all("tr[data-username='carol']"))

    def test_g_groups_with_a_grant(self):
        """Issue 27: create a group with a grant and a member on the Groups page; it is listed and stored."""
        self.login()
        self.click_link("Groups", "nav")
        self.heading("Groups")
        self.css("#new-group-name").send_keys("qa-team")
        self.d.find_element("id", "new-group-members").send_keys("admin")
        self.d.find_element("css selector", "#new-group-grants .add-grant").click()
        self.css("#new-group-grants-pattern-0").send_keys("team-a/*")
        for action in ("pull", "push"):
            self.d.find_element("css selector", "#new-group-grants input[name='%s']" % action).click()
        self.d.find_element("id", "create-group").find_element("css selector", "button[type=submit]").click()
        row = self.css("tr[data-name='qa-team']")
        self.assertEqual(row.find_element("css selector", "td.grants").text, "team-a/*: pull, push")
        self.assertEqual(row.find_element("css selector", "td.members").text, "admin")
        self.shot("groups")
        _, listed = self.api("GET", "/api/v1/groups")
        group = [g for g in listed["groups"] if g["name"] == "qa-team"][0]
        self.assertEqual(group["grants"], [{"repositories": "team-a/*", "actions": ["pull", "push"]}])
        self.api("DELETE", "/api/v1/groups/%d" % group["id"])
        # a user's own grants: the folded editor on the users page
        self.click_link("Users", "nav")
        self.heading("Users")
        self.css("tr[data-username='admin'] td.grants summary").click()
        self.css("tr[data-username='admin'] .add-grant").click()
        row = self.css("tr[data-username='admin'] .grant-row")
        row.find_element("css selector", ".grant-pattern").send_keys("maven:central")
        row.find_element("css selector", "input[name='pull']").click()
        self.css("tr[data-username='admin'] .save-grants").click()
        self.wait(
            lambda d: self.css("tr[data-username='admin'] .grants-summary").text == "maven:central: pull",
            message="the user's grants were never shown",
        )
        _, users = self.api("GET", "/api/v1/users")
        admin = [u for u in users if u["username"] == "admin"][0]
        self.assertEqual(admin["grants"], [{"repositories": "maven:central", "actions": ["pull"]}])
        self.api("PUT", "/api/v1/users/%d" % admin["id"], {"grants": []})

    def test_g_users_new_user_with_grants(self):
        """Issue 27: the New user form has the grants editor; the user is created with those grants."""
        self.login()
        self.click_link("Users", "nav")
        self.heading("Users")
        self.css("#new-username").send_keys("erin")
        self.d.find_element("id", "new-password").send_keys("erin-pw")
        self.d.find_element("css selector", "#new-user-grants .add-grant").click()
        self.css("#new-user-grants-pattern-0").send_keys("team-a/*")
        self.d.find_element("css selector", "#new-user-grants input[name='push']").click()
        self.d.find_element("id", "create-user").find_element("css selector", "button[type=submit]").click()
        self.assertEqual(self.css("tr[data-username='erin'] .grants-summary").text, "team-a/*: push")
        _, users = self.api("GET", "/api/v1/users")
        erin = [u for u in users if u["username"] == "erin"][0]
        self.assertEqual(
            (erin["role"], erin["grants"]), ("read-only", [{"repositories": "team-a/*", "actions": ["push"]}])
        )
        self.api("DELETE", "/api/v1/users/%d" % erin["id"])

    def test_h_config_invalid_value(self):
        """An invalid value shows the API's error inline and changes nothing; a valid one saves; reset restores."""
        self.login()
        self.click_link("Config", "nav")
        self.heading("Configuration")
        row = self.css("tr[data-key='cache.max_size']")
        self.assertIn("integer", row.text)
        self.assertIn("10737418240", row.text)  # the default
        field = row.find_element("css selector", "input")
        field.clear()
        field.send_keys("ten gigabytes")
        [b for b in row.find_elements("css selector", "button") if b.text == "Save"][0].click()
        err = self.css("tr[data-key='cache.max_size'] .error")
        self.assertIn("expected an integer", err.text)
        self.shot("config-error")
        status, entry = self.api("GET", "/api/v1/config/cache.max_size")
        self.assertEqual(entry["value"], "10737418240")
        field.clear()
        field.send_keys("5368709120")
        [b for b in row.find_elements("css selector", "button") if b.text == "Save"][0].click()
        self.wait(lambda d: "Saved" in self.css("tr[data-key='cache.max_size']").text)
        self.assertEqual(self.api("GET", "/api/v1/config/cache.max_size")[1]["value"], "5368709120")
        self.d.refresh()
        row = self.css("tr[data-key='cache.max_size']")
        [b for b in row.find_elements("css selector", "button") if b.text == "Reset to default"][0].click()
        self.wait(lambda d: self.api("GET", "/api/v1/config/cache.max_size")[1]["value"] == "10737418240")

    def test_i_cache_page(self):
        """Entries paged and sorted by size; filter by front; delete one; clear behind a confirmation."""
        self.login()
        self.click_link("Cache", "nav")
        self.heading("Cache")
        self.css("table.entries tbody tr")
        self.d.find_element("css selector", "button[aria-label='Sort by Size']").click()
        self.wait(lambda d: self.hash_params().get("sort") == "size")
        status, page = self.api("GET", "/api/v1/cache/entries?sort=size&order=desc&limit=25")
        wanted = [str(e["id"]) for e in page["entries"]]
        # the hash changes before the sorted page is drawn: wait for the table, then compare
        self.wait(
            lambda d: [r.get_attribute("data-id") for r in self.all("table.entries tbody tr")] == wanted,
            message="the table does not show the API's page sorted by size",
        )
        from selenium.webdriver.support.ui import Select

        Select(self.css("#f-front")).select_by_value("maven")
        self.d.find_element("css selector", "#cache-filters button[type=submit]").click()
        self.wait(lambda d: self.hash_params().get("front") == "maven")
        rows = self.wait(lambda d: self.all("table.entries tbody tr"), message="no Maven entry listed")
        self.assertTrue(all(r.find_elements("css selector", "td")[0].text == "maven" for r in rows))
        self.shot("cache")
        self.css("#f-q").send_keys("inside.txt")
        self.d.find_element("css selector", "#cache-filters button[type=submit]").click()
        self.wait(lambda d: self.hash_params().get("q") == "inside.txt")
        rows = self.wait(
            lambda d: [r for r in self.all("table.entries tbody tr") if "inside.txt" in r.text],
            message="the filtered entry is not listed",
        )
        victim = rows[0].get_attribute("data-id")
        rows[0].find_element("css selector", "button").click()
        self.css("dialog.confirm button[data-confirm='yes']").click()
        self.wait(lambda d: not self.all("tr[data-id='%s']" % victim))
        self.assertEqual(self.api("DELETE", "/api/v1/cache/entries/" + victim)[0], 404)
        # /metrics follows the delete (gauges refreshed from the index)
        stats = self.api("GET", "/api/v1/cache/stats")[1]
        self.wait(
            lambda d: (
                oci.metric(self.c.server, "harbor_cache_cache_bytes") == stats["total_size"]
                and oci.metric(self.c.server, "harbor_cache_cache_entries", kind="proxy")
                + oci.metric(self.c.server, "harbor_cache_cache_entries", kind="hosted")
                == stats["entry_count"]
            ),
            message="the cache gauges of /metrics do not match the index",
        )
        self.css("#cleanup").click()
        self.css("dialog.confirm button[data-confirm='yes']").click()
        self.wait(lambda d: "Cleanup removed" in self.css("#cache-status").text)
        self.css("#clear-cache").click()
        self.css("dialog.confirm button[data-confirm='no']").click()
        self.assertGreater(self.api("GET", "/api/v1/cache/stats")[1]["entry_count"], 0)

    def test_j_audit_log(self):
        """Logins, failed logins, user and config changes and deletes are in the audit log, filterable."""
        # (the earlier stories did these through the console; done again here so this test stands alone)
        support.http("POST", self.url + "/api/v1/auth/login", body={"username": "admin", "password": "nope"})
        status, dave = self.api("POST", "/api/v1/users", {"username": "dave", "password": "pw", "role": "read-only"})
        self.api("PUT", "/api/v1/users/%d" % dave["id"], {"role": "read-write"})
        self.api("DELETE", "/api/v1/users/%d" % dave["id"])
        self.api("PUT", "/api/v1/config", {"entries": [{"key": "cache.retention_days", "value": "31"}]})
        self.api("DELETE", "/api/v1/config/cache.retention_days")
        entry = self.api("GET", "/api/v1/cache/entries?repository=secret&q=.pom")[1]["entries"][0]
        self.api("DELETE", "/api/v1/cache/entries/%d" % entry["id"])
        self.api("DELETE", "/api/v1/images/tags?repository=%s&tag=%s" % (HOSTED_REPO, HOSTED_TAG))
        _push_hosted(self.c.server)
        self.login()
        self.click_link("Audit", "nav")
        self.heading("Audit log")
        self.wait(
            lambda d: "login.failed" in {r.get_attribute("data-action") for r in self.all("tr.audit")},
            message="no failed login in the audit table",
        )
        # routine logins are hidden by default (issue 29): "Show routine logins" brings them back
        self.assertNotIn("login", {r.get_attribute("data-action") for r in self.all("tr.audit")})
        self.shot("audit")
        status, page = self.api("GET", "/api/v1/audit?limit=500")
        seen = {e["action"] for e in page["entries"]}
        for needed in (
            "login",
            "login.failed",
            "user.create",
            "user.update",
            "user.delete",
            "config.update",
            "config.reset",
            "image.push",
            "image.delete",
            "cache.delete",
        ):
            self.assertIn(needed, seen)
        from selenium.webdriver.support.ui import Select

        Select(self.css("#a-action")).select_by_value("user")
        self.d.find_element("css selector", "#audit-filters button[type=submit]").click()
        self.wait(lambda d: self.hash_params().get("action") == "user")
        self.wait(
            lambda d: (
                {r.get_attribute("data-action") for r in self.all("tr.audit")}
                == {"user.create", "user.update", "user.delete"}
            ),
            message="the user.* filter",
        )

    def test_k_upstreams_page(self):
        """Upstreams with health, or a clear "not available" state when the server has no /api/v1/upstreams."""
        self.login()
        self.click_link("Upstreams", "nav")
        self.heading("Upstreams")
        status, _ = self.api("GET", "/api/v1/upstreams")
        if status == 404:
            self.assertIn("not available", self.css("#upstreams-unavailable").text)
        else:
            self.css("table.upstreams")
            names = [r.get_attribute("data-name") for r in self.all("tr.upstream")]
            self.assertIn("upstream", names)
            # declared in the config file: labelled so (its changes go there)
            self.assertEqual(self.css('tr.upstream[data-name="upstream"] .managed-config').text, "config")
        self.shot("upstreams")

    def test_l_keyboard_navigation(self):
        """Tab reaches the directory links, Enter opens them; Escape cancels a confirmation."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys

        self.logout()
        self.open("#/maven?repo=central")
        self.css("table.entries")

        def tab_to(text, limit=40):
            for _ in range(limit):
                ActionChains(self.d).send_keys(Keys.TAB).perform()
                if self.d.switch_to.active_element.text == text:
                    return self.d.switch_to.active_element
            self.fail("Tab never reached %r" % text)

        tab_to("harness")
        ActionChains(self.d).send_keys(Keys.ENTER).perform()
        self.crumbs(["central", "harness"])
        tab_to("small")
        ActionChains(self.d).send_keys(Keys.ENTER).perform()
        self.crumbs(["central", "harness", "small"])
        # the focus ring is visible (the stylesheet's :focus-visible outline)
        focused = tab_to("1.0")
        self.assertNotEqual(focused.value_of_css_property("outline-style"), "none")
        self.login()
        self.open("#/cache")
        self.css("#clear-cache")
        tab_to("Clear cache…")
        ActionChains(self.d).send_keys(Keys.ENTER).perform()
        self.css("dialog.confirm")
        self.assertEqual(self.d.switch_to.active_element.text, "Cancel")
        ActionChains(self.d).send_keys(Keys.ESCAPE).perform()
        self.wait(lambda d: not self.all("dialog.confirm"))
        self.assertGreater(self.api("GET", "/api/v1/cache/stats")[1]["entry_count"], 0)

    def test_m_narrow_layout(self):
        """At 390 pixels wide no page scrolls sideways; tables scroll inside their box."""
        self.login()
        self.d.set_window_size(390, 844)
        width = self.d.execute_script("return window.innerWidth")
        self.assertLessEqual(width, 420)
        pages = [
            (
                "#/maven?repo=central&path=harness/small/1.0&file=harness/small/1.0/small-1.0.jar",
                "#info-panel",
                "mobile-maven",
            ),
            ("#/images?repo=library/test&ref=multi", "table.platforms", "mobile-image"),
            ("#/dashboard", "#dash-summary .stats", "mobile-dashboard"),
            ("#/cache", "table.entries", "mobile-cache"),
            ("#/config", "table.config", "mobile-config"),
        ]
        for address, ready, name in pages:
            self.open(address)
            self.css(ready)
            overflow = self.d.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            self.assertLessEqual(overflow, 0, "%s scrolls sideways by %d px" % (address, overflow))
            self.shot(name)

    def test_n_download_progress_on_dashboard(self):
        """A cold pull of the 120 MiB layer through a throttled upstream shows live progress before it ends."""
        self.login()
        self.heading("Dashboard")
        self.shot("dashboard")
        layer = self.c.images["images"]["large"]["layers"][1]
        path = "/v2/library/test/blobs/" + layer["digest"]
        self.c.fault.set_rules({"path": path, "mode": "rate", "rate": LARGE_RATE})
        first, r1 = oci.start_fetch(self.url + path)
        self.addCleanup(self.c.fault.clear_rules)

        def progress(_):
            for row in self.all("tr.download"):
                if row.get_attribute("data-target") == layer["digest"]:
                    raw = row.find_element("css selector", ".raw")
                    done, total = int(raw.get_attribute("data-done")), raw.get_attribute("data-total")
                    if 0 < done:
                        return done, int(total), row
            return False

        done1, total, _ = self.wait(progress, timeout=20, message="the download never showed on the dashboard")
        self.assertEqual(total, layer["size"])
        self.assertLess(done1, total)
        second, r2 = oci.start_fetch(self.url + path)
        self.wait(
            lambda d: (p := progress(d)) and p[0] > done1 and p[2].find_element("css selector", ".clients").text == "2",
            timeout=10,
            message="progress and the joined client",
        )
        done2, _, row = progress(None)
        self.assertLess(done2, total, "the download ended before the dashboard showed it")
        self.assertIn("of 120.04 MB", row.text)
        self.assertIn("/s", row.text)
        self.shot("dashboard-download")
        self.assertTrue(first.is_alive(), "the pull was still running while the dashboard showed it")
        first.join(60)
        second.join(60)
        self.assertEqual((r1.status, r1.error, r1.digest), (200, None, layer["digest"]))
        self.wait(lambda d: self.all("#no-downloads"), timeout=10, message="the finished download left the table")

    def test_o_content_security_policy(self):
        """/ui/ is served with a CSP that forbids inline script, and Chromium enforces it."""
        status, headers, body = support.http("GET", self.url + "/ui/")
        self.assertEqual(status, 200)
        csp = headers.get("Content-Security-Policy")
        self.assertIn("script-src 'self'", csp)
        self.assertNotIn("unsafe-inline", csp)
        self.assertNotIn(b"<script>", body)
        self.open("#/maven")
        self.css("#repo-select")
        ran = self.d.execute_script("""
            const s = document.createElement('script');
            s.textContent = 'window.__inline = 1';
            document.head.appendChild(s);
            return window.__inline === 1;""")
        self.assertFalse(ran, "an inline script ran despite the CSP")

    def test_q_tags_load_more(self):
        """A repository with more tags than a page lists 100, and "Load more" appends the rest (keyset pages)."""
        tags = ["t%03d" % i for i in range(105)]
        _push_hosted(self.c.server, "team/many", tags)
        self.login()
        self.open("#/images?repo=team/many")
        self.heading("team/many")
        self.wait(lambda d: len(self.all("table.tags tbody tr")) == 100, message="the first page is not 100 tags")
        self.css("button.load-more").click()
        self.wait(lambda d: len(self.all("table.tags tbody tr")) == 105, message="Load more did not append the rest")
        shown = [r.get_attribute("data-tag") for r in self.all("table.tags tbody tr")]
        self.assertEqual(shown, tags)
        self.assertFalse(self.all("button.load-more"))

    def test_p_delete_button_follows_grants(self):
        """Issue 27: the tag Delete button shows only with `delete` on the repository (GET /api/v1/users/me)."""
        from tests.integration.push_support import ensure_user
        from tests.integration.test_grants_it import set_grants

        _push_hosted(self.c.server)
        ensure_user(self.c.server, "gina", "gina-pw", "read-only")
        set_grants(self.c.server, "gina", [{"repositories": "other/*", "actions": ["delete"]}])
        self.logout()
        self.login("gina", "gina-pw")
        # The grant changes while gina is logged in: a reload asks GET /api/v1/users/me again.
        for grant, shown in (("other/*", False), ("team/*", True)):
            set_grants(self.c.server, "gina", [{"repositories": grant, "actions": ["delete"]}])
            self.open("#/images?repo=" + HOSTED_REPO)
            self.css("tr[data-tag='%s']" % HOSTED_TAG)
            buttons = self.all("tr[data-tag='%s'] button.danger" % HOSTED_TAG)
            self.assertEqual(bool(buttons), shown, grant)
        me = self.d.execute_script("return JSON.parse(sessionStorage.getItem('hc.permissions'))")
        self.assertEqual(me["grants"][-1], {"repositories": "team/*", "actions": ["delete"]})
        self.logout()


def start_chromium(profile: str, window: str = "1280,900", logs: bool = False) -> Any:
    """Headless Debian chromium through chromedriver, on its own profile dir: the one start of every Chromium test.

    ``window`` is ``"width,height"``; ``logs`` keeps the browser console (``driver.get_log("browser")``).
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--user-data-dir=" + profile,
        "--window-size=" + window,
        "--lang=en-US",
    ):
        options.add_argument(arg)
    if logs:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
