"""/api/v1/upstreams: the agreed list shape, changes at run time, seeding, write-only credentials."""

from __future__ import annotations

from types import SimpleNamespace

from harbor_cache.core.upstream_health import HealthMonitor
from harbor_cache.core.upstreams import UpstreamCatalog
from harbor_cache.metrics import Metrics
from harbor_cache.settings.startup import MavenRepositoryConfig, UpstreamConfig
from harbor_cache.upstream.registry import UpstreamSet
from tests.test_api import ApiCase

SEED = (
    UpstreamConfig(
        name="hub",
        url="http://127.0.0.1:1",
        registry="docker.io",
        routes=("*",),
        priority=1,
        username="u",
        password="secret-pw",
    ),
    UpstreamConfig(name="quay", url="http://127.0.0.1:2", registry="quay.io", prefix="quay", routes=()),
)
HEALTH_KEYS = {"status", "last_check", "latency_ms", "last_error", "consecutive_failures", "blocked_until"}


class FakeUpstream(SimpleNamespace):
    """Stands in for RegistryUpstream: the catalog only needs its config and name."""

    def __init__(self, config):
        super().__init__(config=config, name=config.name, priority=config.priority)

    def matches(self, name):
        return False

    async def check_access(self):
        return {"reachable": True, "authenticated": True, "status": 401, "error": None}


class UpstreamsApiCase(ApiCase):
    def setUp(self):
        super().setUp()
        self.metrics = Metrics()
        self.set = UpstreamSet([])
        self.health = HealthMonitor(self.set, self.settings, self.metrics, self.clock)
        self.catalog = self.make_catalog(self.set, self.health)
        self.wait(self.catalog.start())
        self.front.upstreams = self.catalog
        self.admin = self.token("admin")

    def make_catalog(self, upstream_set, health, seed=SEED):
        return UpstreamCatalog(
            index=self.index,
            upstream_set=upstream_set,
            health=health,
            build=FakeUpstream,
            seed=seed,
            maven_repositories=(MavenRepositoryConfig("central", "http://m/"),),
            clock=self.clock,
        )

    def upstreams(self):
        r = self.request("GET", "/api/v1/upstreams", token=self.admin)
        self.assertEqual(r.code, 200, r.body)
        return r.json()["upstreams"]


class ListTests(UpstreamsApiCase):
    def test_agreed_shape(self):
        """Every entry has the fields the console relies on; Maven repositories are listed as kind maven."""
        listed = self.upstreams()
        self.assertEqual(
            [(u["name"], u["kind"]) for u in listed], [("hub", "oci"), ("quay", "oci"), ("central", "maven")]
        )
        hub, quay, central = listed
        for u in listed:
            self.assertLessEqual(
                {"id", "name", "kind", "url", "registry", "prefix", "routes", "priority", "allow_push", "health"},
                set(u),
            )
            self.assertEqual(set(u["health"]), HEALTH_KEYS)
            self.assertEqual(u["health"]["status"], "unknown")
        self.assertIsInstance(hub["id"], int)
        self.assertEqual(
            (hub["registry"], hub["prefix"], hub["effective_prefix"], hub["routes"], hub["priority"]),
            ("docker.io", None, "docker.io", ["*"], 1),
        )
        self.assertEqual((quay["prefix"], quay["routes"], quay["allow_push"]), ("quay", [], False))
        self.assertEqual(central["id"], "maven:central")

    def test_credentials_are_never_echoed(self):
        """Neither the list, nor one upstream, nor a change shows the username or password."""
        hub = self.upstreams()[0]
        self.assertTrue(hub["has_credentials"])
        r = self.request("PUT", f"/api/v1/upstreams/{hub['id']}", {"password": "new-secret"}, token=self.admin)
        for body in (
            self.request("GET", "/api/v1/upstreams", token=self.admin).body,
            self.request("GET", f"/api/v1/upstreams/{hub['id']}", token=self.admin).body,
            r.body,
        ):
            self.assertNotIn(b"secret", body)
            self.assertNotIn(b'"u"', body)

    def test_admin_only(self):
        """Every upstream operation needs the admin role."""
        for role in ("read-write", "read-only"):
            token = self.token(role)
            for method, path in (
                ("GET", "/api/v1/upstreams"),
                ("POST", "/api/v1/upstreams"),
                ("POST", "/api/v1/upstreams/test"),
                ("DELETE", "/api/v1/upstreams/1"),
            ):
                self.assert_error(self.request(method, path, {}, token=token), 403, "DENIED")
        self.assert_error(self.request("GET", "/api/v1/upstreams"), 401, "UNAUTHORIZED")


class ChangeTests(UpstreamsApiCase):
    def test_create_update_delete_apply_at_once(self):
        """POST adds to the live set, PUT changes it, DELETE removes it; all without a restart."""
        r = self.request(
            "POST",
            "/api/v1/upstreams",
            {"name": "ghcr", "url": "http://127.0.0.1:3/", "registry": "ghcr.io", "allow_push": True},
            token=self.admin,
        )
        self.assertEqual(r.code, 201, r.body)
        created = r.json()
        self.assertEqual(r.header("Location"), f"/api/v1/upstreams/{created['id']}".encode())
        self.assertEqual(
            (created["url"], created["effective_prefix"], created["routes"], created["allow_push"]),
            ("http://127.0.0.1:3", "ghcr.io", [], True),
        )
        self.assertEqual(self.set.route("ghcr.io/org/app").upstreams[0].name, "ghcr")
        r = self.request("PUT", f"/api/v1/upstreams/{created['id']}", {"prefix": "gh", "priority": 5}, token=self.admin)
        self.assertEqual(r.code, 200, r.body)
        self.assertEqual((r.json()["prefix"], r.json()["priority"], r.json()["registry"]), ("gh", 5, "ghcr.io"))
        self.assertEqual(self.set.route("gh/org/app").remote, "org/app")
        self.assertEqual(self.set.route("ghcr.io/org/app").upstreams, [])
        r = self.request("DELETE", f"/api/v1/upstreams/{created['id']}", token=self.admin)
        self.assertEqual(r.code, 204)
        self.assertEqual(self.set.route("gh/org/app").upstreams, [])
        self.assert_error(self.request("GET", f"/api/v1/upstreams/{created['id']}", token=self.admin), 404, "NOT_FOUND")

    def test_changes_are_audited_without_credentials(self):
        """upstream.create / update / delete go to the audit log with field names, never their values."""
        records = []

        class Audit:
            async def record(self, action, *, actor, target=None, detail=None, request=None):
                records.append((action, actor, target, detail))

        self.front.audit = Audit()
        r = self.request(
            "POST",
            "/api/v1/upstreams",
            {"name": "g", "url": "http://127.0.0.1:3", "prefix": "g", "password": "hush"},
            token=self.admin,
        )
        upstream_id = r.json()["id"]
        self.request("PUT", f"/api/v1/upstreams/{upstream_id}", {"password": "hush2"}, token=self.admin)
        self.request("DELETE", f"/api/v1/upstreams/{upstream_id}", token=self.admin)
        self.assertEqual(
            [(a, actor, target) for a, actor, target, _ in records],
            [("upstream.create", "admin", "g"), ("upstream.update", "admin", "g"), ("upstream.delete", "admin", "g")],
        )
        self.assertEqual(records[1][3], {"id": upstream_id, "fields": ["password"]})
        self.assertNotIn("hush", repr(records))

    def test_listeners_hear_changes_only(self):
        """A change calls the listeners (the OCI core drops remembered 404s); a poll without one does not."""
        calls = []
        self.catalog.listeners.append(lambda: calls.append(1))
        self.upstreams()
        self.assertEqual(calls, [])
        self.request(
            "POST", "/api/v1/upstreams", {"name": "n", "url": "http://127.0.0.1:3", "prefix": "n"}, token=self.admin
        )
        self.assertEqual(calls, [1])
        self.upstreams()
        self.assertEqual(calls, [1])

    def test_bad_bodies(self):
        """Wrong types, bad URLs, prefixes and hosts are 400; clashes are 409; Maven is read-only (409)."""
        for body in (
            {"url": "http://x"},
            {"name": "a"},
            {"name": "a", "url": "ftp://x"},
            {"name": "a", "url": "http://x", "prefix": "Not/One"},
            {"name": "a", "url": "http://x", "registry": "bad host"},
            {"name": "a", "url": "http://x", "priority": "1"},
            {"name": "a", "url": "http://x", "routes": [""]},
            {"name": "a", "url": "http://u:secret@x"},
            {"name": "a", "url": "http://[::1"},
            {"name": "a", "url": "http://x:99999"},
            {"name": "a", "url": "http://x", "kind": "maven"},
            {"name": "a", "url": "http://x", "allow_push": 1},
        ):
            self.assert_error(self.request("POST", "/api/v1/upstreams", body, token=self.admin), 400, "BAD_REQUEST")
        for body in (
            {"name": "hub", "url": "http://x"},
            {"name": "a", "url": "http://x", "prefix": "quay"},
            {"name": "a", "url": "http://x", "registry": "quay.io", "prefix": "other"},
        ):
            self.assert_error(self.request("POST", "/api/v1/upstreams", body, token=self.admin), 409, "CONFLICT")
        self.assert_error(
            self.request("PUT", "/api/v1/upstreams/maven:central", {"priority": 1}, token=self.admin), 409, "CONFLICT"
        )
        self.assert_error(self.request("DELETE", "/api/v1/upstreams/999", token=self.admin), 404, "NOT_FOUND")
        self.assertEqual(len(self.upstreams()), 3)

    def test_test_endpoint_stores_nothing(self):
        """POST /api/v1/upstreams/test answers what the upstream said and adds nothing."""
        r = self.request("POST", "/api/v1/upstreams/test", {"name": "t", "url": "http://127.0.0.1:4"}, token=self.admin)
        self.assertEqual(r.code, 200, r.body)
        self.assertEqual(
            r.json(), {"name": "t", "reachable": True, "authenticated": True, "status": 401, "error": None}
        )
        self.assertEqual(len(self.upstreams()), 3)


class PersistenceTests(UpstreamsApiCase):
    def test_seeded_once(self):
        """The config file seeds the index at the first start only; API changes survive a restart."""
        hub = self.upstreams()[0]
        self.request("DELETE", f"/api/v1/upstreams/{hub['id']}", token=self.admin)
        restarted = UpstreamSet([])
        catalog = self.make_catalog(restarted, HealthMonitor(restarted, self.settings, Metrics(), self.clock))
        self.wait(catalog.start())
        self.assertEqual([u.name for u in restarted.upstreams], ["quay"])

    def test_other_node_sees_changes_at_its_next_poll(self):
        """A change made through one catalog reaches another one on the same index at its poll."""
        other_set = UpstreamSet([])
        other = self.make_catalog(other_set, HealthMonitor(other_set, self.settings, Metrics(), self.clock))
        self.wait(other.start())
        self.request(
            "POST", "/api/v1/upstreams", {"name": "ghcr", "url": "http://127.0.0.1:3", "prefix": "gh"}, token=self.admin
        )
        self.assertEqual(other_set.route("gh/a").upstreams, [])
        self.wait(other.poll())
        self.assertEqual([u.name for u in other_set.route("gh/a").upstreams], ["ghcr"])
        unchanged = other_set.upstreams[0]
        self.wait(other.poll())
        self.assertIs(other_set.upstreams[0], unchanged)  # no change: same objects (tokens and health kept)

    def test_a_changed_config_file_is_reported_not_applied(self):
        """After the first start the index wins; a config file that differs says so in the log."""
        from twisted.logger import globalLogPublisher

        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        restarted = UpstreamSet([])
        changed = (UpstreamConfig(name="other", url="http://127.0.0.1:5"),)
        catalog = self.make_catalog(
            restarted, HealthMonitor(restarted, self.settings, Metrics(), self.clock), seed=changed
        )
        self.wait(catalog.start())
        self.assertEqual(sorted(u.name for u in restarted.upstreams), ["hub", "quay"])
        self.assertTrue(any("differ" in e.get("log_format", "") for e in events))
        events.clear()
        same = UpstreamSet([])
        self.wait(self.make_catalog(same, HealthMonitor(same, self.settings, Metrics(), self.clock)).start())
        self.assertFalse(any("differ" in e.get("log_format", "") for e in events))

    def test_list_survives_an_index_outage(self):
        """GET /api/v1/upstreams still answers (this node's list) when the index cannot be asked."""
        from twisted.internet import defer

        self.patch(self.index, "upstreams_generation", lambda: defer.fail(RuntimeError("database down")))
        r = self.request("GET", "/api/v1/upstreams", token=self.admin)
        self.assertEqual(r.code, 200, r.body)
        self.assertEqual(len(r.json()["upstreams"]), 3)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
