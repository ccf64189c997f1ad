"""/api/v1/upstreams: the agreed list shape, changes at run time, seeding, the config file's upstreams
(configuration as code), write-only credentials bound to the URL's origin."""

from __future__ import annotations

from types import SimpleNamespace

from twisted.internet import defer

from harbor_cache.core.operations.upstream_health import HealthMonitor
from harbor_cache.core.operations.upstreams import UpstreamCatalog, url_origin
from harbor_cache.metrics import Metrics
from harbor_cache.settings.startup import ConfigError, MavenRepositoryConfig, UpstreamConfig
from harbor_cache.upstream.registry import UpstreamSet
from tests.unit.api.test_api import ApiCase

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

    def make_catalog(self, upstream_set, health, seed=SEED, declared=None, config_file=None):
        return UpstreamCatalog(
            index=self.index,
            upstream_set=upstream_set,
            health=health,
            build=FakeUpstream,
            seed=seed,
            declared=declared,
            config_file=config_file,
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
                {
                    "id",
                    "name",
                    "kind",
                    "url",
                    "registry",
                    "prefix",
                    "routes",
                    "priority",
                    "allow_push",
                    "managed_by",
                    "health",
                },
                set(u),
            )
            self.assertEqual(set(u["health"]), HEALTH_KEYS)
        # OCI upstreams not probed yet are "unknown"; Maven repositories are never probed: said so (issue 29)
        self.assertEqual([u["health"]["status"] for u in listed], ["unknown", "unknown", "not_probed"])
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

    def test_list_survives_an_index_outage(self):
        """GET /api/v1/upstreams still answers (this node's list) when the index cannot be asked."""
        from twisted.internet import defer

        self.patch(self.index, "upstreams_generation", lambda: defer.fail(RuntimeError("database down")))
        r = self.request("GET", "/api/v1/upstreams", token=self.admin)
        self.assertEqual(r.code, 200, r.body)
        self.assertEqual(len(r.json()["upstreams"]), 3)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


CONFIG_FILE = "/etc/harbor-cache/harbor.toml"


class ConfigFileTests(UpstreamsApiCase):
    """The file's [[upstreams]] are applied at every start and read-only in the API (issue 23.5)."""

    def restart(self, declared):
        """A new catalog on the same index (a restart) with the file's upstreams ``declared``; its log lines."""
        from twisted.logger import formatEvent, globalLogPublisher

        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        restarted = UpstreamSet([])
        catalog = self.make_catalog(
            restarted,
            HealthMonitor(restarted, self.settings, Metrics(), self.clock),
            declared=declared,
            config_file=CONFIG_FILE,
        )
        self.wait(catalog.start())
        globalLogPublisher.removeObserver(events.append)
        self.catalog = self.front.upstreams = catalog
        return [formatEvent(e) for e in events if "of the config file" in e.get("log_format", "")]

    def by_name(self):
        return {u["name"]: u for u in self.upstreams()}

    def test_a_changed_file_applies_at_the_next_start(self):
        """Created, updated and removed among the file's; the API's upstreams stay; one log line each."""
        hub_from_file = UpstreamConfig(**{**SEED[0].__dict__, "url": "http://127.0.0.1:9", "priority": 4})
        ghcr = UpstreamConfig(name="ghcr", url="http://127.0.0.1:3", prefix="gh", routes=())
        lines = self.restart((hub_from_file, ghcr))
        self.assertEqual(
            lines,
            [
                "upstream hub of the config file updated: url, priority, managed_by",
                "upstream ghcr of the config file created",
            ],
        )
        listed = self.by_name()
        self.assertEqual(
            {name: u["managed_by"] for name, u in listed.items()},
            {"hub": "config", "quay": "api", "ghcr": "config", "central": "config"},
        )
        # the console names the file beside what it declares (issue 29)
        self.assertEqual(
            {name: u["config_file"] for name, u in listed.items()},
            {"hub": CONFIG_FILE, "quay": None, "ghcr": CONFIG_FILE, "central": CONFIG_FILE},
        )
        self.assertEqual((listed["hub"]["url"], listed["hub"]["priority"]), ("http://127.0.0.1:9", 4))
        self.assertEqual([u.name for u in self.set.route("gh/a").upstreams], [])  # the old catalog's set
        self.assertEqual([u.name for u in self.catalog.upstream_set.route("gh/a").upstreams], ["ghcr"])
        # the same file again: nothing logged; a changed one: only what changed
        self.assertEqual(self.restart((hub_from_file, ghcr)), [])
        self.assertEqual(
            self.restart((UpstreamConfig(**{**ghcr.__dict__, "prefix": "ghcr"}),)),
            ["upstream hub of the config file removed", "upstream ghcr of the config file updated: prefix"],
        )
        self.assertEqual(sorted(self.by_name()), ["central", "ghcr", "quay"])

    def test_the_files_upstreams_are_read_only_in_the_api(self):
        """PUT and DELETE of a file's upstream are 409 naming the file; the API's own stay changeable."""
        self.restart((UpstreamConfig(name="ghcr", url="http://127.0.0.1:3", prefix="gh", routes=()),))
        listed = self.by_name()
        ghcr, quay = listed["ghcr"], listed["quay"]
        for method, body in (("PUT", {"priority": 3}), ("DELETE", None)):
            r = self.request(method, f"/api/v1/upstreams/{ghcr['id']}", body, token=self.admin)
            self.assert_error(r, 409, "CONFLICT")
            self.assertIn(CONFIG_FILE, r.json()["errors"][0]["message"])
        self.assertEqual(self.by_name()["ghcr"], ghcr)
        r = self.request("POST", "/api/v1/upstreams/test", {"id": ghcr["id"]}, token=self.admin)
        self.assertEqual(r.code, 200, r.body)  # testing changes nothing: allowed
        r = self.request("PUT", f"/api/v1/upstreams/{quay['id']}", {"priority": 3}, token=self.admin)
        self.assertEqual((r.code, r.json()["managed_by"]), (200, "api"))
        self.assert_error(
            self.request("POST", "/api/v1/upstreams", {"name": "ghcr", "url": "http://x"}, token=self.admin),
            409,
            "CONFLICT",
        )
        r = self.request("DELETE", f"/api/v1/upstreams/{quay['id']}", token=self.admin)
        self.assertEqual(r.code, 204)

    def test_a_namespace_clash_with_the_apis_stops_the_start(self):
        """A file upstream claiming an API upstream's prefix for another registry: ConfigError, nothing applied."""
        clash = UpstreamConfig(name="other", url="http://127.0.0.1:3", prefix="quay", registry="other.io", routes=())
        restarted = UpstreamSet([])
        catalog = self.make_catalog(
            restarted, HealthMonitor(restarted, self.settings, Metrics(), self.clock), declared=(clash,)
        )
        failure = self.failureResultOf(defer.ensureDeferred(catalog.start()), ConfigError)
        self.assertIn("/api/v1/upstreams", str(failure.value))
        self.assertEqual(sorted(self.by_name()), ["central", "hub", "quay"])


class CredentialOriginTests(UpstreamsApiCase):
    """Stored credentials are bound to the URL's origin (issue 24.3): a new host never receives them."""

    def hub(self):
        return next(u for u in self.upstreams() if u["name"] == "hub")

    def stored(self, upstream_id):
        return next(r for r in self.wait(self.index.list_upstreams())[1] if r.id == upstream_id)

    def test_a_new_origin_drops_stored_credentials(self):
        """PUT with a URL on another host, port or scheme drops them; the same origin keeps them."""
        hub = self.hub()
        r = self.request("PUT", f"/api/v1/upstreams/{hub['id']}", {"url": "http://127.0.0.1:1/"}, token=self.admin)
        self.assertTrue(r.json()["has_credentials"])  # same origin (a trailing slash)
        r = self.request("PUT", f"/api/v1/upstreams/{hub['id']}", {"url": "http://127.0.0.1:7"}, token=self.admin)
        self.assertEqual(r.code, 200, r.body)
        self.assertFalse(r.json()["has_credentials"])
        row = self.stored(hub["id"])
        self.assertEqual((row.username, row.password), (None, None))

    def test_credentials_given_again_go_with_the_new_origin(self):
        """A new URL with credentials in the same request stores those."""
        hub = self.hub()
        body = {"url": "https://127.0.0.1:7", "username": "v", "password": "other-pw"}
        r = self.request("PUT", f"/api/v1/upstreams/{hub['id']}", body, token=self.admin)
        self.assertTrue(r.json()["has_credentials"])
        row = self.stored(hub["id"])
        self.assertEqual((row.username, row.password), ("v", "other-pw"))

    def test_testing_another_url_does_not_send_stored_credentials(self):
        """POST /test with an id and another origin builds the upstream without the stored credentials."""
        built = []
        self.catalog._build = lambda config: built.append(config) or FakeUpstream(config)
        hub = self.hub()
        for url in ("http://127.0.0.1:1", "http://elsewhere.invalid", "https://127.0.0.1:1"):
            r = self.request("POST", "/api/v1/upstreams/test", {"id": hub["id"], "url": url}, token=self.admin)
            self.assertEqual(r.code, 200, r.body)
        self.assertEqual(
            [(c.url, c.username, c.password) for c in built],
            [
                ("http://127.0.0.1:1", "u", "secret-pw"),
                ("http://elsewhere.invalid", None, None),
                ("https://127.0.0.1:1", None, None),
            ],
        )

    def test_origin(self):
        """Scheme, host (any case) and port, the default port spelled out."""
        self.assertEqual(url_origin("http://Example.COM"), url_origin("http://example.com:80/v2"))
        self.assertEqual(url_origin("http://[::1]:5000"), ("http", "::1", 5000))
        self.assertNotEqual(url_origin("http://example.com"), url_origin("https://example.com"))
        self.assertNotEqual(url_origin("http://example.com"), url_origin("http://example.com.evil"))
