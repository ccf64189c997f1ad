"""The console's /api/v1 endpoints (api/console.py) and the audit log they and the seed's endpoints write.

Same harness as test_api: StubTreq into the real Root with the ApiFront, SQL
inline on a sqlite file, time from a Clock.  The OCI core and the hosted
registry are small fakes (their own behaviour is tested elsewhere); the
in-flight table is the real `Downloads` object's shape.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

from treq.testing import StubTreq
from twisted.internet import defer

from harbor_cache import __version__
from harbor_cache.api.console import ConsoleApi, manifest_view
from harbor_cache.api.front import ApiFront
from harbor_cache.api.openapi import build_document
from harbor_cache.core.flight.downloads import Download
from harbor_cache.core.oci.proxy import ManifestResult
from harbor_cache.core.operations.audit import AuditLog
from harbor_cache.core.seams import ConsoleQueries
from harbor_cache.errors import ManifestUnknown, NotHosted
from harbor_cache.http.resources import Root
from harbor_cache.metrics import Metrics
from tests.unit.api.test_api import T0, ApiCase

INDEX = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:" + "a" * 64,
                "size": 500,
                "platform": {"os": "linux", "architecture": "amd64"},
            },
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:" + "b" * 64,
                "size": 501,
                "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
            },
        ],
    }
).encode()
IMAGE = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + "c" * 64, "size": 7},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + "d" * 64, "size": 1000},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + "e" * 64, "size": 24},
        ],
        "annotations": {"note": "<b>x</b>"},
    }
).encode()


class FakeOci:
    def __init__(self):
        self.manifests = {
            ("library/x", "multi"): (INDEX, "application/vnd.oci.image.index.v1+json"),
            ("library/x", "sha256:" + "a" * 64): (IMAGE, "application/vnd.oci.image.manifest.v1+json"),
        }

    async def get_manifest_by_tag(self, name, tag):
        return self._get(name, tag)

    async def get_manifest_by_digest(self, name, digest):
        return self._get(name, digest)

    def _get(self, name, ref):
        if (name, ref) not in self.manifests:
            raise ManifestUnknown("manifest unknown", {"name": name, "reference": ref})
        body, media_type = self.manifests[(name, ref)]
        return ManifestResult(body, "sha256:" + "f" * 64 if ref == "multi" else ref, media_type, "hit")


class FakeHosted:
    def __init__(self):
        self.deleted = []

    async def delete_manifest(self, name, reference, is_tag):
        if reference == "cached":
            raise NotHosted("cached tags are removed through the management API")
        if reference == "missing":
            raise ManifestUnknown("manifest unknown")
        self.deleted.append((name, reference))


class OnlyProtocol:
    """``target`` seen through ``protocol``: any other attribute is an AttributeError.

    The console gets the index as `ConsoleQueries`; handing it this view proves it asks for nothing else.
    """

    def __init__(self, target, protocol):
        self._target = target
        self._protocol = protocol
        self._names = {n for n in vars(protocol) if not n.startswith("_")} | set(
            vars(protocol).get("__annotations__", {})
        )

    def __getattr__(self, name):
        if name.startswith("_") or name not in self._names:
            raise AttributeError(f"{name} is not part of {self._protocol.__name__}")
        return getattr(self._target, name)


class ConsoleCase(ApiCase):
    def setUp(self):
        super().setUp()
        self.metrics = Metrics()
        self.downloads = SimpleNamespace(inflight={})
        self.evictor.downloads = self.downloads
        self.audit = AuditLog(self.index, self.clock, self.settings)
        self.hosted = FakeHosted()
        site = SimpleNamespace(problems=lambda: defer.succeed([]))
        self.console = ConsoleApi(
            queries=OnlyProtocol(self.index, ConsoleQueries),
            downloads=self.downloads,
            evictor=self.evictor,
            settings=self.settings,
            oci=FakeOci(),
            hosted=self.hosted,
            metrics=self.metrics,
            site_front=site,
            clock=self.clock,
            public_url="http://cache.example:5001",
        )
        self.changes = []
        self.front = ApiFront(
            users=self.users,
            tokens=self.tokens,
            settings=self.settings,
            evictor=self.evictor,
            openapi_document=build_document(__version__),
            audit=self.audit,
            console=self.console,
            on_cache_change=lambda: self.changes.append(1),
        )
        root = Root()
        root.mount(b"api", self.front.app.resource())
        self.http = StubTreq(root)
        self.admin = self.token("admin")

    def put(self, kind, type_, repository, key, size, *, created=0.0, access=0.0, hits=0):
        row = self.wait(
            self.index.put_entry(
                kind=kind,
                type_=type_,
                repository=repository,
                key=key,
                digest="sha256:" + key.encode().hex()[:64].ljust(64, "0"),
                size=size,
                now=T0 + created,
            )
        )
        self.wait(self.index.record_access({row.id: (T0 + access, hits)}, {}))
        return row.id

    def get(self, path, token=None):
        r = self.request("GET", path, token=token or self.admin)
        self.assertEqual(r.code, 200, r.body)
        return r.json()

    def audit_actions(self):
        return [e["action"] for e in reversed(self.get("/api/v1/audit?limit=500")["entries"])]


class CacheEntriesTests(ConsoleCase):
    def setUp(self):
        super().setUp()
        self.ids = {
            "a": self.put("proxy", "maven", "central", "org/a/1/a-1.jar", 300, created=1, access=5, hits=2),
            "b": self.put("proxy", "blob", "", "sha256:" + "b" * 64, 100, created=2, access=9, hits=7),
            "c": self.put("hosted", "manifest", "team/app", "sha256:" + "c" * 64, 200, created=3, access=1, hits=0),
        }

    def keys(self, query):
        return [e["id"] for e in self.get("/api/v1/cache/entries" + query)["entries"]]

    def test_sorts(self):
        """sort=size|hits|last_access|created in either order; ties broken by id."""
        ids = self.ids
        self.assertEqual(self.keys("?sort=size&order=desc"), [ids["a"], ids["c"], ids["b"]])
        self.assertEqual(self.keys("?sort=size&order=asc"), [ids["b"], ids["c"], ids["a"]])
        self.assertEqual(self.keys("?sort=hits"), [ids["b"], ids["a"], ids["c"]])
        self.assertEqual(self.keys("?sort=last_access"), [ids["b"], ids["a"], ids["c"]])
        self.assertEqual(self.keys("?sort=created&order=asc"), [ids["a"], ids["b"], ids["c"]])

    def test_filters_and_paging(self):
        """front, kind, repository and q (case-insensitive substring) filter; total counts the matches."""
        ids = self.ids
        self.assertEqual(self.keys("?front=maven"), [ids["a"]])
        self.assertEqual(sorted(self.keys("?front=oci")), sorted([ids["b"], ids["c"]]))
        self.assertEqual(self.keys("?kind=hosted"), [ids["c"]])
        self.assertEqual(self.keys("?repository=central"), [ids["a"]])
        self.assertEqual(self.keys("?q=ORG%2FA"), [ids["a"]])
        page = self.get("/api/v1/cache/entries?sort=size&limit=1&offset=1")
        self.assertEqual((page["total"], [e["id"] for e in page["entries"]]), (3, [ids["c"]]))
        entry = self.get("/api/v1/cache/entries?front=maven")["entries"][0]
        self.assertEqual(
            (entry["front"], entry["kind"], entry["hits"], entry["size"], entry["last_access"]),
            ("maven", "proxy", 2, 300, "2023-11-14T22:13:25Z"),
        )

    def test_bad_parameters(self):
        """Unknown sort, order, front or kind, a limit out of 1..500, a negative offset: 400 BAD_REQUEST."""
        for query in (
            "sort=name",
            "order=up",
            "front=npm",
            "kind=x",
            "limit=0",
            "limit=501",
            "offset=-1",
            "limit=abc",
            "q=" + "x" * 300,
        ):
            self.assert_error(
                self.request("GET", "/api/v1/cache/entries?" + query, token=self.admin), 400, "BAD_REQUEST"
            )

    def test_delete_entry(self):
        """A proxied entry goes (204, audited, gauges told); hosted is 409 CONFLICT; unknown is 404."""
        r = self.request("DELETE", "/api/v1/cache/entries/%d" % self.ids["a"], token=self.admin)
        self.assertEqual(r.code, 204, r.body)
        self.assertIsNone(self.wait(self.index.get_entry_by_id(self.ids["a"])))
        self.assertEqual(self.changes, [1])
        self.assert_error(
            self.request("DELETE", "/api/v1/cache/entries/%d" % self.ids["a"], token=self.admin), 404, "NOT_FOUND"
        )
        self.assert_error(
            self.request("DELETE", "/api/v1/cache/entries/%d" % self.ids["c"], token=self.admin), 409, "CONFLICT"
        )
        self.assertIsNotNone(self.wait(self.index.get_entry_by_id(self.ids["c"])))
        record = self.get("/api/v1/audit?action=cache")["entries"][0]
        self.assertEqual(
            (record["action"], record["actor"], record["target"]), ("cache.delete", "admin", "central org/a/1/a-1.jar")
        )

    def test_admin_only(self):
        """Listing and deleting entries are admin operations."""
        token = self.token("read-write")
        self.assert_error(self.request("GET", "/api/v1/cache/entries", token=token), 403, "DENIED")
        self.assert_error(self.request("DELETE", "/api/v1/cache/entries/1", token=token), 403, "DENIED")
        self.assert_error(self.request("GET", "/api/v1/cache/entries"), 401, "UNAUTHORIZED")


class DownloadsTests(ConsoleCase):
    def test_in_flight(self):
        """Bytes done of total, rate since the start, clients (the first plus those who joined)."""
        dl = Download(("maven", "central", "org/a/1/a-1.jar"), "maven", "central")
        dl.started_at = T0
        dl.temp = SimpleNamespace(received=4096, total=10240)
        dl.joined = 2
        self.downloads.inflight[dl.key] = dl
        blob = Download(("blob", "sha256:" + "9" * 64), "oci", "upstream")
        blob.started_at = T0 + 3
        self.downloads.inflight[blob.key] = blob
        self.clock.advance(4)
        got = self.get("/api/v1/downloads", token=self.token("read-only"))["downloads"]
        self.assertEqual(
            got[0],
            {
                "front": "maven",
                "source": "central",
                "repository": "central",
                "target": "org/a/1/a-1.jar",
                "bytes_done": 4096,
                "total": 10240,
                "rate": 1024.0,
                "clients": 3,
                "started_at": "2023-11-14T22:13:20Z",
                "elapsed_seconds": 4.0,
                "state": "body",
            },
        )
        self.assertEqual(
            (got[1]["target"], got[1]["bytes_done"], got[1]["total"], got[1]["state"], got[1]["clients"]),
            ("sha256:" + "9" * 64, 0, None, "connecting", 1),
        )


class ConfigSchemaTests(ConsoleCase):
    def test_every_key_described(self):
        """Each runtime key: type, bounds or choices, description, default, current value, updated_at."""
        self.request(
            "PUT", "/api/v1/config", {"entries": [{"key": "cache.retention_days", "value": "7"}]}, token=self.admin
        )
        keys = {k["key"]: k for k in self.get("/api/v1/config/schema")["keys"]}
        self.assertEqual(set(keys), {e["key"] for e in self.get("/api/v1/config")})
        self.assertEqual(keys["cache.max_size"]["type"], "integer")
        self.assertEqual(keys["cache.max_size"]["minimum"], 1)
        self.assertEqual(keys["cache.max_size"]["default"], str(10 << 30))
        self.assertEqual(keys["cache.eviction_policy"]["enum"], ["lru", "lfu", "fifo"])
        self.assertEqual(keys["registry.anonymous_pull"]["type"], "boolean")
        self.assertEqual(
            (keys["cache.retention_days"]["value"], keys["cache.retention_days"]["updated_at"]),
            ("7", "2023-11-14T22:13:20Z"),
        )
        self.assertIsNone(keys["cache.max_size"]["updated_at"])
        self.assertTrue(all(k["description"] for k in keys.values()))


class AuditTests(ConsoleCase):
    def test_management_actions_are_recorded(self):
        """Logins, failed logins, user and config changes, clears and cleanups land in the audit log."""
        self.request("POST", "/api/v1/auth/login", {"username": "admin", "password": "nope"})
        r = self.request(
            "POST", "/api/v1/users", {"username": "carol", "password": "pw", "role": "read-only"}, token=self.admin
        )
        carol = r.json()["id"]
        self.request("PUT", "/api/v1/users/%d" % carol, {"role": "read-write"}, token=self.admin)
        self.request("PUT", "/api/v1/users/%d" % carol, {"password": "new"}, token=self.admin)
        self.request("DELETE", "/api/v1/users/%d" % carol, token=self.admin)
        self.request(
            "PUT", "/api/v1/config", {"entries": [{"key": "cache.retention_days", "value": "7"}]}, token=self.admin
        )
        self.request("DELETE", "/api/v1/config/cache.retention_days", token=self.admin)
        self.request("DELETE", "/api/v1/cache", token=self.admin)
        self.request("POST", "/api/v1/cache/cleanup", token=self.admin)
        self.assertEqual(
            self.audit_actions(),
            [
                "login",
                "login.failed",
                "user.create",
                "user.update",
                "user.update",
                "user.delete",
                "config.update",
                "config.reset",
                "cache.clear",
                "cache.cleanup",
            ],
        )
        records = self.get("/api/v1/audit?action=user")["entries"]
        self.assertEqual(
            [(e["action"], e["target"], e["detail"]) for e in records],
            [
                ("user.delete", "carol", {"id": carol}),
                ("user.update", "carol", {"password_changed": True}),
                ("user.update", "carol", {"role": "read-write"}),
                ("user.create", "carol", {"role": "read-only"}),
            ],
        )
        failed = self.get("/api/v1/audit?action=login.failed")["entries"]
        self.assertEqual([(e["actor"], e["at"]) for e in failed], [("admin", "2023-11-14T22:13:20Z")])

    def test_filters_paging_and_admin_only(self):
        """actor and q filter, offset/limit page newest first; other roles get 403."""
        for i in range(5):
            self.wait(self.audit.record("config.update", actor="admin", target=f"key{i}"))
            self.clock.advance(1)
        page = self.get("/api/v1/audit?action=config&limit=2&offset=1")
        self.assertEqual((page["total"], [e["target"] for e in page["entries"]]), (5, ["key3", "key2"]))
        self.assertEqual([e["target"] for e in self.get("/api/v1/audit?q=KEY4")["entries"]], ["key4"])
        self.assertEqual(self.get("/api/v1/audit?actor=nobody")["total"], 0)
        self.assert_error(self.request("GET", "/api/v1/audit?action=bogus", token=self.admin), 400, "BAD_REQUEST")
        self.assert_error(self.request("GET", "/api/v1/audit", token=self.token("read-write")), 403, "DENIED")

    def test_pruned_after_retention(self):
        """Records older than audit.retention_days go; 0 keeps everything."""
        self.wait(self.audit.record("cache.clear", actor="admin"))
        self.clock.advance(91 * 86400)
        self.wait(self.audit.record("cache.cleanup", actor="admin"))
        self.wait(self.settings.update([("audit.retention_days", "0")]))
        self.assertEqual(self.wait(self.audit.prune()), 0)
        self.wait(self.settings.update([("audit.retention_days", "90")]))
        self.assertEqual(self.wait(self.audit.prune()), 2)  # cache.clear and the admin's login of setUp
        self.admin = self.token("admin")
        self.assertEqual(self.audit_actions(), ["cache.cleanup", "login"])

    def test_a_failing_write_never_fails_the_action(self):
        """A broken audit table is logged, and the login still succeeds."""
        self.index.add_audit = lambda **kw: defer.fail(RuntimeError("disk full"))
        self.token("admin")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class ImagesTests(ConsoleCase):
    def setUp(self):
        super().setUp()
        self.wait(self.index.put_tag("library/x", "multi", "sha256:" + "f" * 64, "proxy", None, T0))
        self.wait(
            self.index.put_hosted_manifest(
                repository="team/app",
                key="sha256:" + "1" * 64,
                digest="sha256:" + "1" * 64,
                size=42,
                now=T0 + 5,
                tag="v1",
                media_type="application/vnd.oci.image.manifest.v1+json",
                referrer=None,
            )
        )

    def test_repositories_and_tags(self):
        """Repositories say hosted or cached; tags carry kind, size and the pull lines for this server."""
        repos = {r["name"]: r for r in self.get("/api/v1/images", token=self.token("read-only"))["repositories"]}
        self.assertEqual((repos["library/x"]["cached"], repos["library/x"]["hosted"]), (True, False))
        self.assertEqual((repos["team/app"]["hosted"], repos["team/app"]["tag_count"]), (True, 1))
        tags = self.get("/api/v1/images/tags?repository=team/app")["tags"]
        self.assertEqual([(t["tag"], t["kind"], t["size"]) for t in tags], [("v1", "hosted", 42)])
        self.assertEqual(
            tags[0]["pull"],
            {
                "docker": "docker pull cache.example:5001/team/app:v1",
                "podman": "podman pull cache.example:5001/team/app:v1",
            },
        )
        self.assert_error(
            self.request("GET", "/api/v1/images/tags?repository=no/such", token=self.admin), 404, "NAME_UNKNOWN"
        )
        self.assert_error(
            self.request("GET", "/api/v1/images/tags?repository=Bad!", token=self.admin), 400, "NAME_INVALID"
        )

    def test_index_and_image_views(self):
        """An index lists its platforms; an image its config, layers and their total; annotations as strings."""
        index = self.get("/api/v1/images/manifest?repository=library/x&reference=multi")
        self.assertEqual(index["kind"], "index")
        self.assertEqual(
            [(p["os"], p["architecture"], p["variant"]) for p in index["platforms"]],
            [("linux", "amd64", None), ("linux", "arm64", "v8")],
        )
        self.assertEqual(index["pull"]["docker"], "docker pull cache.example:5001/library/x:multi")
        image = self.get("/api/v1/images/manifest?repository=library/x&reference=sha256:" + "a" * 64)
        self.assertEqual(
            (image["kind"], image["total_size"], len(image["layers"]), image["config"]["size"]), ("image", 1024, 2, 7)
        )
        self.assertEqual(image["annotations"], {"note": "<b>x</b>"})
        self.assertEqual(image["pull"]["podman"], "podman pull cache.example:5001/library/x@sha256:" + "a" * 64)
        self.assert_error(
            self.request("GET", "/api/v1/images/manifest?repository=library/x&reference=nope", token=self.admin),
            404,
            "MANIFEST_UNKNOWN",
        )
        self.assert_error(
            self.request("GET", "/api/v1/images/manifest?repository=library/x&reference=-bad", token=self.admin),
            400,
            "TAG_INVALID",
        )

    def test_manifest_view_of_odd_documents(self):
        """Not JSON or not an object: MANIFEST_INVALID; descriptors without sizes count as 0."""
        from harbor_cache.errors import ManifestInvalid

        for body in (b"{", b"[]"):
            self.assertRaises(ManifestInvalid, manifest_view, body, "sha256:x", "application/json")
        view = manifest_view(json.dumps({"layers": [{"digest": "sha256:1"}, "junk"]}).encode(), "sha256:x", "t")
        self.assertEqual((view["total_size"], view["layers"][0]["size"]), (0, None))

    def test_delete_hosted_tag(self):
        """read-write and admin may delete a hosted tag (audited); a cached one is 409; read-only gets 403."""
        r = self.request("DELETE", "/api/v1/images/tags?repository=team/app&tag=v1", token=self.token("read-write"))
        self.assertEqual(r.code, 204, r.body)
        self.assertEqual(self.hosted.deleted, [("team/app", "v1")])
        self.assert_error(
            self.request("DELETE", "/api/v1/images/tags?repository=team/app&tag=cached", token=self.admin),
            409,
            "CONFLICT",
        )
        self.assert_error(
            self.request("DELETE", "/api/v1/images/tags?repository=team/app&tag=missing", token=self.admin),
            404,
            "MANIFEST_UNKNOWN",
        )
        self.assert_error(
            self.request("DELETE", "/api/v1/images/tags?repository=team/app&tag=v1", token=self.token("read-only")),
            403,
            "DENIED",
        )
        record = self.get("/api/v1/audit?action=image.delete")["entries"][0]
        self.assertEqual((record["actor"], record["target"]), ("read-write", "team/app:v1"))


class DashboardTests(ConsoleCase):
    def test_summary(self):
        """Version, uptime, cache totals against cache.max_size, and counters by front and source."""
        self.metrics.source_hits.labels("oci", "hub").inc(3)
        self.metrics.source_misses.labels("oci", "hub").inc(1)
        self.metrics.upstream_bytes.labels("oci", "hub").inc(2048)
        self.metrics.served_bytes.labels("maven").inc(10)
        self.put("proxy", "maven", "central", "a.jar", 300)
        self.clock.advance(90)
        d = self.get("/api/v1/dashboard", token=self.token("read-only"))
        self.assertEqual((d["version"], d["status"], d["uptime_seconds"]), (__version__, "healthy", 90))
        self.assertEqual((d["cache"]["entry_count"], d["cache"]["max_size"]), (1, 10 << 30))
        self.assertEqual(
            d["sources"],
            [
                {
                    "front": "oci",
                    "source": "hub",
                    "hits": 3,
                    "misses": 1,
                    "upstream_bytes": 2048,
                    "errors": 0,
                    "coalesced": 0,
                }
            ],
        )
        self.assertEqual(d["served_bytes"], {"maven": 10})
