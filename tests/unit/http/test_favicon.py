"""The console's icon: /ui/favicon.svg, linked from index.html, and /favicon.ico (asked by every browser) not a 404."""

from __future__ import annotations

import os

import harbor_cache
from tests.unit.base import HarborTestCase, header


class FaviconTests(HarborTestCase):
    def test_favicon_ico_redirects_to_the_svg(self) -> None:
        """/favicon.ico: 302 to /ui/favicon.svg, which is served as SVG (HEAD: a GET's file body needs the reactor)."""
        response = self.successResultOf(self.request("HEAD", "/favicon.ico"))
        first = response.history()[0]
        self.assertEqual((first.code, header(first, "Location")), (302, "/ui/favicon.svg"))
        self.assertEqual((response.code, header(response, "Content-Type")), (200, "image/svg+xml"))

    def test_index_links_the_icon(self) -> None:
        """index.html names the icon, so the tab shows it before /favicon.ico is even asked."""
        ui = os.path.join(os.path.dirname(harbor_cache.__file__), "ui")
        with open(os.path.join(ui, "index.html"), encoding="utf-8") as f:
            self.assertIn('<link rel="icon" href="favicon.svg" type="image/svg+xml">', f.read())
        self.assertTrue(os.path.isfile(os.path.join(ui, "favicon.svg")))
