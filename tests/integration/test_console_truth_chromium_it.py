"""The console says the truth (issue 29 points 5 and 6), clicked through in real Chromium.

One live server whose only upstream, distribution's registry with library/test,
serves registry ``docker.io`` (containerd's ``?ns=docker.io``) and the default
namespace: clients reach one image by two keys.  Stories: one images row per
upstream image with its registry; platform rows with their image's size; blob rows
named after their image with the reads counted; the config page's 2^60 bound
exact; the favicon, page titles, empty states and confirmations that name what
they delete.  Screenshots as in test_console_chromium_it (``HARBOR_UPDATE_DOCS=1``
copies them into docs/screenshots/).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import oci_support as oci
from tests.integration import support
from tests.integration import test_console_chromium_it as base
from tests.integration import test_console_chromium_it as chromium

ACCEPT = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"


class TruthConsole:
    """The server (upstream registry docker.io), content pulled by two paths, and a browser."""

    def __init__(self) -> None:

        self.closers: list[Any] = []
        try:
            self.registry, self.images = support.shared_upstream()
            config = support.oci_config(
                self.registry.url,
                server={"public_url": "http://127.0.0.1:@PORT@", "access_flush_seconds": 0.2},
                registry="docker.io",
                routes=["library/*"],
            )
            self.server = support.HarborServer(config)
            self.closers.append(self.server.close)
            self.prime()
            self.profile = tempfile.mkdtemp(prefix="harbor-it-chromium-truth-")
            self.closers.append(lambda: shutil.rmtree(self.profile, ignore_errors=True))
            self.driver = chromium.start_chromium(self.profile, window="1280,900")
            self.closers.append(self.driver.quit)
        except BaseException:
            self.close()
            raise

    def get(self, path: str) -> bytes:
        status, _, body = support.http("GET", self.server.url + path, headers={"Accept": ACCEPT})
        assert status == 200, (path, status, body[:200])
        return body

    def prime(self) -> None:
        """The multi-arch index by containerd's ns=docker.io and by the plain name; amd64 pulled whole, its
        layer by three clients."""
        self.get("/v2/library/test/manifests/multi?ns=docker.io")
        index = json.loads(self.get("/v2/library/test/manifests/multi"))
        amd64 = next(m for m in index["manifests"] if m["platform"]["architecture"] == "amd64")
        self.amd64 = amd64["digest"]
        image = json.loads(self.get("/v2/library/test/manifests/" + self.amd64))
        self.config_blob = image["config"]["digest"]
        self.layer = image["layers"][0]["digest"]
        self.image_size = image["config"]["size"] + sum(layer["size"] for layer in image["layers"])
        self.get("/v2/library/test/blobs/" + self.config_blob)
        for _client in range(3):
            self.get("/v2/library/test/blobs/" + self.layer)

    def close(self) -> None:
        while self.closers:
            try:
                self.closers.pop()()
            except Exception:
                pass


class TruthStories(SynchronousTestCase):
    """Issue 29 points 5 and 6, one story each."""

    wait: Any = base.ConsoleTests.wait
    css: Any = base.ConsoleTests.css
    all: Any = base.ConsoleTests.all
    heading: Any = base.ConsoleTests.heading
    open: Any = base.ConsoleTests.open
    shot: Any = base.ConsoleTests.shot
    login: Any = base.ConsoleTests.login
    api: Any = base.ConsoleTests.api

    def setUp(self) -> None:
        base._selenium()
        self.c = oci.class_fixture(self, TruthConsole, TruthConsole.close)
        self.d = self.c.driver
        self.url = self.c.server.url
        self.d.set_window_size(1280, 900)
        self.shots = os.environ.get("HARBOR_SCREENSHOTS") or os.path.abspath("screenshots")
        os.makedirs(self.shots, exist_ok=True)

    def title(self, expected: str) -> None:
        self.wait(lambda d: d.title == expected, message="title never read %r (%r)" % (expected, self.d.title))

    def test_a_one_row_per_image(self) -> None:
        """library/test reached as docker.io/library/test (ns=) and library/test is one row, registry docker.io."""
        self.login()
        self.open("#/images")
        self.heading("Container images")
        self.title("Images · harbor-cache")
        rows = self.wait(lambda d: self.all("table.images tr.image"), message="no image row")
        self.assertEqual(len(rows), 1, [r.text for r in rows])
        row = rows[0]
        self.assertEqual(row.get_attribute("data-registry"), "docker.io")
        self.assertEqual(row.find_element("css selector", "td.registry").text, "docker.io")
        self.assertIn("docker.io/library/test", row.find_element("css selector", ".paths").text)
        # the name may wrap after each "/", never inside a word
        self.assertEqual(len(row.find_elements("css selector", ".repo-link wbr")), 1)
        self.shot("images-one-row")

    def test_b_platform_sizes(self) -> None:
        """The index's amd64 row shows the image's size (exact bytes on hover); arm64, never pulled, says so."""
        self.login()
        self.open("#/images?repo=library/test&ref=multi")
        rows = self.wait(lambda d: self.all("table.platforms tr.platform"), message="no platform rows")
        cells = {
            r.find_element("css selector", ".platform-link").text: r.find_element("css selector", "td.image-size")
            for r in rows
        }
        amd64 = next(v for k, v in cells.items() if "amd64" in k)
        arm64 = next(v for k, v in cells.items() if "arm64" in k)
        size = amd64.find_element("css selector", ".size")
        self.assertEqual(size.get_attribute("title"), f"{self.c.image_size:,} bytes")
        self.assertEqual(arm64.text, "not cached")
        self.shot("image-platform-sizes")

    def test_c_cache_names_blobs_and_counts_hits(self) -> None:
        """The layer three clients read is named after library/test and shows 3 hits; a delete names what goes."""
        self.login()
        self.open("#/cache?front=oci&sort=size&order=desc")
        self.title("Cache · harbor-cache")
        key = self.c.layer

        def layer_row(d: Any) -> Any:
            for r in self.all("table.entries tbody tr"):
                if r.find_elements("css selector", "code[title='%s']" % key):
                    return r
            return None

        row = self.wait(layer_row, message="the layer is not listed")
        self.assertIn("library/test", row.find_element("css selector", "td.owner").text)
        self.wait(
            lambda d: layer_row(d).find_element("css selector", "td.hits").text == "3",
            message="the layer's hits never read 3",
        )
        self.shot("cache-blob-images")
        layer_row(self.d).find_element("css selector", "button").click()
        text = self.css("dialog.confirm p").text
        self.assertIn("Delete the cached blob sha256:", text)
        self.assertIn("of library/test", text)
        self.shot("cache-delete-confirm")
        self.css("dialog.confirm button[data-confirm='no']").click()

    def test_d_config_bounds_exact(self) -> None:
        """cache.max_size's upper bound prints as 1152921504606846976, not ...7000."""
        self.login()
        self.open("#/config")
        self.title("Config · harbor-cache")
        row = self.css("tr[data-key='cache.max_size']")
        self.assertIn("1152921504606846976", row.find_element("css selector", ".bounds").text)
        self.assertNotIn("1152921504606847000", row.text)
        self.shot("config")

    def test_e_favicon_and_empty_states(self) -> None:
        """The icon is linked and /favicon.ico finds it; an empty table says so in a row."""
        status, headers, _ = support.http("GET", self.url + "/favicon.ico")
        self.assertEqual((status, headers.get("Location")), (302, "/ui/favicon.svg"))
        self.login()
        href = self.d.execute_script("return document.querySelector('link[rel=icon]').href")
        self.assertTrue(href.endswith("/ui/favicon.svg"), href)
        self.assertEqual(support.http("GET", href)[0], 200)
        self.open("#/audit?q=no-such-thing-anywhere")
        self.title("Audit · harbor-cache")
        self.assertEqual(self.css("table.audit-log tr.empty").text, "No record matches.")
        self.open("#/cache?q=no-such-thing-anywhere")
        self.assertEqual(self.css("table.entries tr.empty").text, "No entry matches these filters.")
        self.shot("empty-state")
