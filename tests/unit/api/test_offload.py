"""The bodies that grow with the index are shaped and encoded off the reactor (issue 30 point 2).

``/api/v1/images`` (6.9 MB at a million entries), ``/api/v1/images/tags``
(3.8 MB for a repository of 10k tags), a Maven browse listing and
``/repositories``: their shaping and JSON encoding run on the app's offload
(a thread pool in production).  Here the offload is a recorder that runs
each call inline, so the test sees what was handed to it and the bodies stay
what they were.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer

from harbor_cache.settings.startup import MavenRepositoryConfig
from tests.unit.base import OCI_MANIFEST, HarborTestCase


class RecordingOffload:
    """Runs each call inline and records the function's name."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def run(self, fn: Any, *args: Any) -> defer.Deferred:
        self.calls.append(fn.__name__)
        return defer.maybeDeferred(fn, *args)


class OffloadTests(HarborTestCase):
    def make_config(self) -> dict[str, Any]:
        return {"maven_repositories": (MavenRepositoryConfig(id="central", url="http://upstream.test/"),)}

    def setUp(self) -> None:
        super().setUp()
        self.add_user("admin", "admin-pw", "admin")
        self.token = self.api_login()
        self.offload = RecordingOffload()
        app = self.app
        app.api_front.offload = app.console_api.offload = self.offload
        app.maven.offload = app.maven_front.offload = self.offload
        index, now = app.index, self.clock.seconds()
        for n in range(3):
            digest = "sha256:" + f"{n:x}" * 64
            self.successResultOf(
                self.drive(
                    index.put_entry(
                        kind="proxy",
                        type_="manifest",
                        repository="lib/app",
                        key=digest,
                        digest=digest,
                        size=10,
                        now=now,
                        media_type=OCI_MANIFEST,
                    )
                )
            )
            self.successResultOf(self.drive(index.put_tag("lib/app", f"v{n}", digest, "proxy", OCI_MANIFEST, now)))
        for key in ("org/ex/lib/1.0/lib-1.0.jar", "org/ex/lib/1.0/lib-1.0.pom"):
            self.successResultOf(
                self.drive(
                    index.put_entry(
                        kind="proxy",
                        type_="maven",
                        repository="central",
                        key=key,
                        digest="sha256:" + "f" * 64,
                        size=5,
                        now=now,
                    )
                )
            )

    def get(self, path: str) -> Any:
        if path.startswith("/api/"):
            code, doc = self.api("GET", path, token=self.token)
            self.assertEqual(code, 200, doc)
            return doc
        response, body = self.fetch("GET", path, user=None)
        self.assertEqual(response.code, 200, body)
        return json.loads(body)

    def test_images_are_encoded_off_the_reactor(self):
        """A page of images (bounded: `limit`, at most 500) is shaped from its rows and encoded off the reactor."""
        doc = self.get("/api/v1/images")
        self.assertEqual([(r["name"], r["tag_count"]) for r in doc["repositories"]], [("lib/app", 3)])
        self.assertEqual(self.offload.calls, ["encode_json"])

    def test_image_tags_are_encoded_off_the_reactor(self):
        doc = self.get("/api/v1/images/tags?repository=lib/app")
        self.assertEqual([t["tag"] for t in doc["tags"]], ["v0", "v1", "v2"])
        self.assertEqual(doc["tags"][0]["pull"]["docker"], "docker pull cache.test/lib/app:v0")
        self.assertEqual(self.offload.calls, ["encode_json"])

    def test_a_browse_listing_is_encoded_off_the_reactor(self):
        doc = self.get("/repositories/central/browse?path=org/ex/lib/1.0")
        self.assertEqual([e["name"] for e in doc["entries"]], ["lib-1.0.jar", "lib-1.0.pom"])
        self.assertEqual(self.offload.calls, ["encode_json"])
        self.offload.calls.clear()
        self.assertEqual([r["id"] for r in self.get("/repositories")["repositories"]], ["central"])
        self.assertEqual(self.offload.calls, ["encode_json"])
