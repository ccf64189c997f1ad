"""Search (issue 29, point 1) on a live server: the route over real content, and the header box in Chromium.

One HarborServer with a Maven repository ``central`` (nginx over the shared
Maven directory) and a hosted image ``team/app:v1`` pushed through /v2.  The
Chromium story: sign in, type in the header's search box, see the results,
click one and land on the Maven browser on that file, then on the image page
of a tag.  Screenshot ``search`` (``docs/screenshots/search.png`` with
``HARBOR_UPDATE_DOCS=1``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.parse
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import oci_support as oci
from tests.integration import support
from tests.integration import test_console_chromium_it as chromium
from tests.integration.test_console_chromium_it import (
    DOCS_SHOTS,
    HOSTED_REPO,
    HOSTED_TAG,
    WAIT,
    _push_hosted,
    _selenium,
)

JAR = "harness/small/1.0/small-1.0.jar"


class Site:
    """The server, its peers and the browser, shared by the tests of the class."""

    def __init__(self) -> None:

        self.closers: list[Any] = []
        try:
            self.maven = support.MavenUpstream(support.maven_repo_dir())
            self.closers.append(self.maven.close)
            # library/* would be proxied (from a port nobody listens on); team/app is hosted
            config = support.oci_config(
                "http://127.0.0.1:9",
                server={"public_url": "http://127.0.0.1:@PORT@"},
                routes=["library/*"],
                maven_repositories=[{"id": "central", "url": self.maven.url, "private": False}],
            )
            self.server = support.HarborServer(config)
            self.closers.append(self.server.close)
            status, _, body = support.http("GET", f"{self.server.url}/artifacts/central/{JAR}")
            assert status == 200, (status, body[:200])
            _push_hosted(self.server)
            self.profile = tempfile.mkdtemp(prefix="harbor-it-search-")
            self.closers.append(lambda: shutil.rmtree(self.profile, ignore_errors=True))
            self.driver = chromium.start_chromium(self.profile, window="1280,800")
            self.closers.append(self.driver.quit)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        while self.closers:
            try:
                self.closers.pop()()
            except Exception:
                pass


class SearchTests(SynchronousTestCase):
    def setUp(self) -> None:
        _selenium()
        self.s: Site = oci.class_fixture(self, Site, Site.close)
        self.d = self.s.driver
        self.url = self.s.server.url

    def token(self) -> str:
        body = json.dumps({"username": "admin", "password": self.s.server.admin_password}).encode()
        status, _, content = support.http(
            "POST", self.url + "/api/v1/auth/login", headers={"Content-Type": "application/json"}, body=body
        )
        assert status == 200, content
        token: str = json.loads(content)["token"]
        return token

    def api(self, query: str) -> dict[str, Any]:
        status, _, content = support.http(
            "GET", self.url + "/api/v1/search?" + query, headers={"Authorization": "Bearer " + self.token()}
        )
        self.assertEqual(status, 200, content)
        page: dict[str, Any] = json.loads(content)
        return page

    def test_route_finds_cached_and_hosted_content(self) -> None:
        maven = self.api("q=" + urllib.parse.quote("g:harness a:small v:1.*"))["results"]
        self.assertEqual([(r["kind"], r["name"], r["version"]) for r in maven], [("maven", "small", "1.0")])
        hosted = self.api("q=team/app")["results"]
        self.assertEqual(
            sorted((r["kind"], r["tag"]) for r in hosted),
            [("image", None), ("tag", HOSTED_TAG)],
        )
        digest = next(r["digest"] for r in hosted if r["kind"] == "tag")
        by_digest = self.api("q=" + digest[:15])["results"]
        self.assertEqual([(r["kind"], r["digest"]) for r in by_digest], [("manifest", digest)])

    # -- the browser -----------------------------------------------------------------

    def wait(self, condition: Any, message: str = "") -> Any:
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(
            self.d, WAIT, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
        ).until(condition, message)

    def hits(self) -> list[Any]:
        return self.wait(
            lambda d: d.find_elements("css selector", "table.search-results a.hit"), "no search results shown"
        )

    def login(self) -> None:
        self.d.get("about:blank")
        self.d.get(self.url + "/ui/#/login")
        self.wait(lambda d: d.find_elements("id", "login-username"))[0].send_keys("admin")
        self.d.find_element("id", "login-password").send_keys(self.s.server.admin_password)
        self.d.find_element("id", "login-submit").click()
        self.wait(lambda d: any(e.text == "Dashboard" for e in d.find_elements("css selector", "main h1")))

    def type_search(self, text: str) -> None:
        box = self.d.find_element("id", "search-box")
        box.clear()
        box.send_keys(text + "\n")

    def params(self) -> dict[str, str]:
        fragment = urllib.parse.urlsplit(self.d.current_url).fragment
        return dict(urllib.parse.parse_qsl(fragment.partition("?")[2]))

    def test_header_box_to_maven_browser_and_image_page(self) -> None:
        self.login()
        self.type_search("small")
        links = self.hits()
        self.assertIn("harness:small:1.0", [a.text for a in links])
        self.d.save_screenshot(os.path.abspath("search.png"))
        if os.environ.get("HARBOR_UPDATE_DOCS") == "1":
            os.makedirs(DOCS_SHOTS, exist_ok=True)
            shutil.copy(os.path.abspath("search.png"), os.path.join(DOCS_SHOTS, "search.png"))
        next(a for a in links if a.text == "harness:small:1.0").click()
        self.wait(lambda d: self.params().get("file") == JAR, "the Maven browser never opened on the file")
        self.assertTrue(self.d.current_url.split("#")[1].startswith("/maven?"))
        self.wait(lambda d: d.find_elements("id", "repo-select"), "the Maven browser did not render")

        self.type_search(f"{HOSTED_REPO}:{HOSTED_TAG}")
        tag = next(a for a in self.hits() if a.text == f"{HOSTED_REPO}:{HOSTED_TAG}")
        tag.click()
        self.wait(lambda d: self.params() == {"repo": HOSTED_REPO, "ref": HOSTED_TAG}, "the image page never opened")
        self.assertTrue(self.d.current_url.split("#")[1].startswith("/images?"))

    def test_no_match_says_so(self) -> None:
        self.login()
        self.type_search("zzqxv-nothing")
        self.wait(lambda d: d.find_elements("id", "no-hits"), "no 'Nothing matches' line")
