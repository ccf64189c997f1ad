"""Namespaces on fakes: prefixes, containerd's ns=, no mixing, read-only proxies, tags from upstream, auto-block."""

from __future__ import annotations

import json
import os

from treq.client import HTTPClient
from treq.testing import RequestTraversalAgent
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.core.operations.upstream_health import HealthMonitor
from harbor_cache.grammar.namespaces import check_namespaces, effective_prefix, namespaced_key, split_prefix
from harbor_cache.settings.startup import ConfigError, UpstreamConfig, parse_config
from harbor_cache.testing import FakeRegistry, sha
from harbor_cache.upstream.registry import RegistryUpstream
from tests.unit.base import OCI_MANIFEST, HostedRegistryCase, OciCacheCase, error_code, header, sqlite_pool


def image(registry: FakeRegistry, name: str, tag: str, marker: bytes) -> str:
    """Put a one-layer image whose content says ``marker`` under name:tag; returns the manifest digest."""
    layer = registry.add_blob(b"layer of " + marker)
    config = registry.add_blob(b'{"marker": "%s"}' % marker)
    _, digest = registry.add_manifest(
        name,
        tag,
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 10},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 10}],
        },
    )
    return digest


class PureTests(SynchronousTestCase):
    def test_prefix_split_and_keys(self):
        """A prefix owns the names under it; the bare name is the default namespace's key."""
        self.assertEqual(split_prefix("quay/library/nginx", ["quay"]), ("quay", "library/nginx"))
        self.assertEqual(split_prefix("quay", ["quay"]), (None, "quay"))
        self.assertEqual(split_prefix("quayx/a", ["quay"]), (None, "quayx/a"))
        self.assertEqual(namespaced_key("quay.io", "library/x"), "quay.io/library/x")
        self.assertEqual(namespaced_key(None, "library/x"), "library/x")

    def test_effective_prefix_and_clashes(self):
        """The registry host is the prefix by default; a prefix means one registry and the other way round."""
        quay = UpstreamConfig("quay", "http://q", registry="quay.io")
        self.assertEqual(effective_prefix(quay), "quay.io")
        self.assertIsNone(effective_prefix(UpstreamConfig("plain", "http://p")))
        self.assertIsNone(check_namespaces([quay, UpstreamConfig("quay2", "http://q2", registry="quay.io")]))
        self.assertIn("already", check_namespaces([quay, UpstreamConfig("x", "http://x", prefix="quay.io")]))
        self.assertIn("set prefix", check_namespaces([UpstreamConfig("p", "http://p", registry="reg:5000")]))

    def test_config_keys(self):
        """prefix, registry and allow_push parse; a namespaced upstream routes nothing by default."""
        c = parse_config(
            {
                "upstreams": [
                    {"name": "hub", "url": "http://127.0.0.1:1", "registry": "docker.io", "routes": ["*"]},
                    {
                        "name": "quay",
                        "url": "http://127.0.0.1:2",
                        "registry": "quay.io",
                        "prefix": "quay",
                        "allow_push": True,
                    },
                    {"name": "plain", "url": "http://127.0.0.1:3"},
                ]
            }
        )
        hub, quay, plain = c.upstreams
        self.assertEqual((hub.routes, quay.routes, plain.routes), (("*",), (), ("*",)))
        self.assertEqual((quay.prefix, quay.registry, quay.allow_push), ("quay", "quay.io", True))
        self.assertEqual(parse_config({}).upstreams[0].registry, "docker.io")
        for bad in (
            {"name": "a", "url": "http://a", "prefix": "A/B"},
            {"name": "a", "url": "http://a", "registry": "no spaces"},
            {"name": "a", "url": "http://a", "allow_push": "yes"},
        ):
            self.assertRaises(ConfigError, parse_config, {"upstreams": [bad]})
        self.assertRaises(
            ConfigError,
            parse_config,
            {
                "upstreams": [
                    {"name": "a", "url": "http://a", "prefix": "p", "registry": "a.io"},
                    {"name": "b", "url": "http://b", "prefix": "p", "registry": "b.io"},
                ]
            },
        )


class TwoRegistries(OciCacheCase):
    """docker.io (routes *) and quay.io (prefix quay), each holding a different library/test:1."""

    def setUp(self):
        super().setUp()
        self.hub, self.quay = self.upstream, FakeRegistry()
        self.hub_digest = image(self.hub, "library/test", "1", b"hub")
        self.quay_digest = image(self.quay, "library/test", "1", b"quay")
        self.quay_agent = RequestTraversalAgent(self.quay)
        self.health = self.app.upstream_health
        hub = RegistryUpstream(
            UpstreamConfig(name="hub", url="http://upstream.test", registry="docker.io", routes=("*",)),
            self.app.upstreams.upstreams[0]._http,
            self.clock,
            header_timeout=10,
        )
        quay = RegistryUpstream(
            UpstreamConfig(name="quay", url="http://quay.test", registry="quay.io", prefix="quay", routes=()),
            HTTPClient(self.quay_agent),
            self.clock,
            header_timeout=10,
        )
        self.app.upstreams.replace([hub, quay])
        self.extra_agents.append(self.quay_agent)

    def get(self, path, method="GET"):
        response = self.successResultOf(self.request(method, path))
        return response, self.successResultOf(self.read_body(response))

    def digest_of(self, path):
        response, body = self.get(path)
        self.assertEqual(response.code, 200, body)
        return response.headers.getRawHeaders(b"Docker-Content-Digest")[0].decode()

    def test_same_name_in_two_registries_never_mixes(self):
        """ns=docker.io, ns=quay.io, the quay prefix and the default namespace each get their own image."""
        self.assertEqual(self.digest_of("/v2/library/test/manifests/1?ns=quay.io"), self.quay_digest)
        self.assertEqual(self.digest_of("/v2/library/test/manifests/1?ns=docker.io"), self.hub_digest)
        self.assertEqual(self.digest_of("/v2/quay/library/test/manifests/1"), self.quay_digest)
        self.assertEqual(self.digest_of("/v2/library/test/manifests/1"), self.hub_digest)
        # Served again from the cache: still apart (tags are keyed by namespace).
        self.assertEqual(self.digest_of("/v2/library/test/manifests/1?ns=quay.io"), self.quay_digest)
        self.assertEqual(self.digest_of("/v2/library/test/manifests/1"), self.hub_digest)
        # ns=quay.io and the quay prefix share one entry: quay was asked once.
        self.assertEqual(self.quay.count("GET", "/v2/library/test/manifests/1"), 1)
        tags = self.successResultOf(self.app.index.get_tag("quay/library/test", "1"))
        self.assertEqual(tags.digest, self.quay_digest)

    def test_access_log_names_the_upstream(self):
        """Each access line says which upstream answered ("-" when the cache did alone)."""
        from twisted.logger import globalLogPublisher

        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.get("/v2/library/test/manifests/1?ns=quay.io")
        self.get("/v2/library/test/manifests/1?ns=docker.io")
        self.get("/v2/library/test/manifests/1?ns=quay.io")
        lines = [
            (e["path"], e["cache_status"], e["upstream"])
            for e in events
            if e.get("log_namespace") == "harbor_cache.access" and "path" in e
        ]
        self.assertEqual(
            lines,
            [
                ("/v2/library/test/manifests/1?ns=quay.io", "miss", "quay"),
                ("/v2/library/test/manifests/1?ns=docker.io", "miss", "hub"),
                ("/v2/library/test/manifests/1?ns=quay.io", "hit", "-"),
            ],
        )

    def test_unknown_ns_is_name_unknown(self):
        """A registry no upstream serves is 404 NAME_UNKNOWN (containerd then tries its next host)."""
        response, body = self.get("/v2/library/test/manifests/1?ns=ghcr.io")
        self.assertEqual(response.code, 404)
        self.assertEqual(json.loads(body)["errors"][0]["code"], "NAME_UNKNOWN")
        self.assertIn(b"ghcr.io", body)

    def test_negative_cache_is_per_namespace(self):
        """A 404 from quay for a name does not hide docker.io's copy of it."""
        only_hub = image(self.hub, "library/solo", "1", b"solo")
        response, _ = self.get("/v2/quay/library/solo/manifests/1")
        self.assertEqual(response.code, 404)
        self.assertEqual(self.digest_of("/v2/library/solo/manifests/1?ns=docker.io"), only_hub)

    def test_changed_upstreams_forget_remembered_404s(self):
        """A name that was 404 is asked again once the upstream list changed."""
        response, _ = self.get("/v2/quay/library/late/manifests/1")
        self.assertEqual(response.code, 404)
        digest = image(self.quay, "library/late", "1", b"late")
        response, _ = self.get("/v2/quay/library/late/manifests/1")
        self.assertEqual(response.code, 404)  # remembered
        self.app.oci.upstreams_changed()
        self.assertEqual(self.digest_of("/v2/quay/library/late/manifests/1"), digest)

    def test_blobs_are_shared_by_digest(self):
        """A blob pulled through one namespace is a hit through the other."""
        layer = self.hub.add_blob(b"shared layer")
        self.quay.add_blob(b"shared layer")
        self.get(f"/v2/library/x/blobs/{layer}")
        response, body = self.get(f"/v2/quay/library/x/blobs/{layer}")
        self.assertEqual((response.code, body), (200, b"shared layer"))
        self.assertEqual(self.quay.count("GET", "/blobs/"), 0)

    def test_tags_list_asks_the_upstream(self):
        """tags/list of a proxied repository is the upstream's list (paged with n/last) merged with the cache."""
        image(self.quay, "library/test", "2", b"quay2")
        image(self.quay, "library/test", "3", b"quay3")
        response, body = self.get("/v2/quay/library/test/tags/list")
        self.assertEqual((response.code, json.loads(body)["tags"]), (200, ["1", "2", "3"]))
        response, body = self.get("/v2/quay/library/test/tags/list?n=2")
        self.assertEqual(json.loads(body)["tags"], ["1", "2"])
        self.assertIn(b'rel="next"', response.headers.getRawHeaders(b"Link")[0])
        response, body = self.get("/v2/quay/library/test/tags/list?n=2&last=2")
        self.assertEqual(json.loads(body)["tags"], ["3"])
        self.assertIsNone(response.headers.getRawHeaders(b"Warning"))

    def test_tags_list_falls_back_to_the_cache_with_a_warning(self):
        """Upstream down: the cached tags, flagged stale."""
        self.get("/v2/quay/library/test/manifests/1")
        self.quay.status = 503
        response, body = self.get("/v2/quay/library/test/tags/list")
        self.assertEqual((response.code, json.loads(body)["tags"]), (200, ["1"]))
        self.assertIn(b"110", response.headers.getRawHeaders(b"Warning")[0])

    def test_failing_upstream_is_blocked_then_unblocked(self):
        """N failed probes block an upstream (skipped, stale served); one good probe unblocks it."""
        self.get("/v2/quay/library/test/manifests/1")
        self.quay.status = 503
        for _ in range(3):
            self.successResultOf(Deferred.fromCoroutine(self.health.probe_all()))
            self.flush()
        quay = self.app.upstreams.by_name("quay")
        self.assertTrue(self.health.is_blocked(quay))
        view = self.health.health_of("quay").view(self.clock.seconds())
        self.assertEqual((view["status"], view["consecutive_failures"]), ("blocked", 3))
        self.assertIsNotNone(view["blocked_until"])
        self.assertEqual(self.app.metrics.upstream_blocked.labels("quay")._value.get(), 1)
        before = self.quay.count("GET", "/manifests/")
        self.clock.advance(10_000)  # tag TTL over: revalidation would ask upstream
        self.health.health_of("quay").blocked_until = self.clock.seconds() + 60
        response, _ = self.get("/v2/quay/library/test/manifests/1")
        self.assertEqual(response.code, 200)
        self.assertIn(b"110", response.headers.getRawHeaders(b"Warning")[0])
        self.assertEqual(self.quay.count("GET", "/manifests/") + self.quay.count("HEAD", "/manifests/"), before)
        self.quay.status = None
        self.successResultOf(Deferred.fromCoroutine(self.health.probe_all()))
        self.assertEqual(self.health.health_of("quay").view(self.clock.seconds())["status"], "healthy")
        self.assertFalse(self.health.is_blocked(quay))


class _ThreeUpstreams(HostedRegistryCase):
    """A hosted registry whose names are partly claimed: hub by route library/*, quay and team by prefix."""

    def setUp(self):
        super().setUp()
        http = HTTPClient(RequestTraversalAgent(FakeRegistry()))
        self.app.oci.upstreams.replace(
            [
                RegistryUpstream(UpstreamConfig("hub", "http://hub.test", routes=("library/*",)), http, self.clock),
                RegistryUpstream(
                    UpstreamConfig("quay", "http://quay.test", registry="quay.io", prefix="quay", routes=()),
                    http,
                    self.clock,
                ),
                RegistryUpstream(
                    UpstreamConfig("team", "http://team.test", prefix="team", allow_push=True, routes=()),
                    http,
                    self.clock,
                ),
            ]
        )


class ReadOnlyProxyTests(_ThreeUpstreams):
    def test_push_into_a_proxy_namespace_is_denied(self):
        """Blob upload, manifest PUT and DELETE under a proxied name: 403 DENIED saying it is a proxy."""
        for name in ("library/test", "quay/library/test"):
            response, body = self.fetch("POST", f"/v2/{name}/blobs/uploads/")
            self.assertEqual(response.code, 403, body)
            self.assertEqual(error_code(body), "DENIED")
            self.assertIn(b"proxy", body)
            response, body = self.fetch("PUT", f"/v2/{name}/manifests/1", b"{}", {"Content-Type": OCI_MANIFEST})
            self.assertEqual((response.code, error_code(body)), (403, "DENIED"))
            response, body = self.fetch("DELETE", f"/v2/{name}/manifests/1")
            self.assertEqual((response.code, error_code(body)), (403, "DENIED"))

    def test_hosted_and_allow_push_names_take_pushes(self):
        """Names no proxy claims, and names of an allow_push namespace, are writable."""
        for name in ("myteam/app", "team/app"):
            body = self.image_manifest(name, [os.urandom(100)])
            response, answer = self.put_manifest(name, "1", body)
            self.assertEqual(response.code, 201, answer)
            self.assertEqual(header(response, "Docker-Content-Digest"), sha(body))


class ProbeScheduleTests(SynchronousTestCase):
    def setUp(self):
        from twisted.internet.task import Clock

        from harbor_cache.metrics import Metrics

        class Settings(dict):
            get = dict.__getitem__

        class Probed:
            def __init__(self, name):
                self.name, self.calls, self.code, self.hold = name, 0, 200, None

            async def probe(self):
                self.calls += 1
                if self.hold is not None:
                    await self.hold
                return self.code

        self.clock = Clock()
        self.settings = Settings(
            {
                "upstreams.probe_interval_seconds": 30,
                "upstreams.block_after_failures": 3,
                "upstreams.block_seconds": 60,
                "upstreams.failing_probe_interval_seconds": 2,
            }
        )
        self.a, self.b = Probed("a"), Probed("b")
        self.monitor = HealthMonitor(
            type("S", (), {"upstreams": [self.a, self.b]})(), self.settings, Metrics(), self.clock
        )
        self.monitor.start()
        self.addCleanup(self.monitor.stop)
        self.clock.advance(0)

    def test_rounds_follow_the_interval_setting(self):
        """A probe at start, then one per interval; a shorter interval applies within a second; stop stops."""
        self.assertEqual(self.a.calls, 1)
        self.clock.pump([1] * 29)
        self.assertEqual(self.a.calls, 1)
        self.clock.advance(1)
        self.assertEqual(self.a.calls, 2)
        self.settings["upstreams.probe_interval_seconds"] = 2
        self.clock.pump([1] * 2)
        self.assertEqual(self.a.calls, 3)
        self.monitor.stop()
        self.clock.pump([1] * 10)
        self.assertEqual(self.a.calls, 3)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_failing_upstream_is_probed_often_and_unblocks_soon(self):
        """While failing or blocked an upstream is probed every failing interval; it is back within it."""
        self.a.code = 503
        self.clock.pump([1] * 34)
        self.assertEqual(self.a.calls, 4)  # t=0 (fine), 30 (fails), 32, 34
        self.assertEqual(self.b.calls, 2)  # t=0, 30
        self.assertEqual(self.monitor.health_of("a").status(self.clock.seconds()), "blocked")
        self.a.code = 200
        self.clock.pump([1] * 2)
        self.assertEqual(self.monitor.health_of("a").status(self.clock.seconds()), "healthy")

    def test_a_hanging_probe_delays_no_other(self):
        """One probe in flight per upstream; the others keep their schedule."""
        from twisted.internet.defer import Deferred as D

        self.a.hold = D()
        self.clock.pump([1] * 30)
        self.clock.pump([1] * 31)
        self.assertEqual((self.a.calls, self.b.calls), (2, 3))
        self.a.hold.callback(None)


class _DownUpstream:
    """An upstream that is never reachable: answers fail at once."""

    def __init__(self, config):
        self.config, self.name, self.priority = config, config.name, config.priority

    def matches(self, name):
        return False

    async def request(self, *args, **kwargs):
        from harbor_cache.upstream.http import UpstreamError

        raise UpstreamError(f"{self.name}: connection refused", "connect")


class HostedNamesTests(_ThreeUpstreams):
    def test_hosted_names_override_routes(self):
        """registry.hosted_names carves hosted names out of a route's claim, at run time; not out of a prefix."""
        name = "library/ours"
        response, body = self.fetch("POST", f"/v2/{name}/blobs/uploads/")
        self.assertEqual(response.code, 403, body)
        self.successResultOf(
            Deferred.fromCoroutine(self.app.settings.update([("registry.hosted_names", "library/ours*, quay/*")]))
        )
        response, answer = self.put_manifest(name, "1", self.image_manifest(name, [os.urandom(50)]))
        self.assertEqual(response.code, 201, answer)
        self.assertEqual(self.app.oci.route(name).upstreams, [])
        response, body = self.fetch("POST", "/v2/quay/library/test/blobs/uploads/")
        self.assertEqual(response.code, 403, body)
        response, body = self.fetch("POST", "/v2/library/test/blobs/uploads/")
        self.assertEqual(response.code, 403, body)


class NsTokenScopeTests(HostedRegistryCase):
    anonymous_pull = False

    def test_token_for_the_client_name_covers_an_ns_request(self):
        """containerd's token names library/test; the same request with ns=quay.io is not a 401 loop."""
        self.app.oci.upstreams.replace(
            [_DownUpstream(UpstreamConfig("quay", "http://quay.test", registry="quay.io", prefix="quay", routes=()))]
        )
        response, body = self.fetch(
            "GET", "/v2/token?service=harbor-cache&scope=repository:library/test:pull", user="reader"
        )
        token = json.loads(body)["token"]
        response, body = self.fetch(
            "GET", "/v2/library/test/manifests/1?ns=quay.io", user=None, headers={"Authorization": "Bearer " + token}
        )
        self.assertEqual(response.code, 503, body)  # past authorization: the (down) upstream was asked
        response, body = self.fetch(
            "GET", "/v2/other/name/manifests/1?ns=quay.io", user=None, headers={"Authorization": "Bearer " + token}
        )
        self.assertEqual(response.code, 401, body)


class FallbackAndRateLimitTests(TwoRegistries):
    def test_blocked_upstream_is_skipped_in_priority_fallback(self):
        """Two upstreams serve the default namespace; the first one blocked is not even asked."""
        second = RegistryUpstream(
            UpstreamConfig(name="second", url="http://quay.test", routes=("*",), priority=5),
            HTTPClient(self.quay_agent),
            self.clock,
            header_timeout=10,
        )
        hub = self.app.upstreams.by_name("hub")
        self.app.upstreams.replace([hub, second])
        only_second = image(self.quay, "library/only", "1", b"only")
        for _ in range(3):
            self.health.failed(hub, "test")
        self.assertTrue(self.health.is_blocked(hub))
        before = self.hub.count("GET", "/v2/library/only")
        self.assertEqual(self.digest_of("/v2/library/only/manifests/1"), only_second)
        self.assertEqual(self.hub.count("GET", "/v2/library/only"), before)

    def test_ratelimit_headers_become_gauges(self):
        """ratelimit-limit / ratelimit-remaining (Docker Hub's "100;w=21600") are exported per upstream."""
        metrics_upstream = self.app.upstreams.by_name("hub")
        metrics_upstream._metrics = self.app.metrics
        self.hub.extra_headers = {b"ratelimit-limit": b"100;w=21600", b"ratelimit-remaining": b"76;w=21600"}
        self.digest_of("/v2/library/test/manifests/1")
        self.assertEqual(self.app.metrics.upstream_ratelimit_limit.labels("hub")._value.get(), 100)
        self.assertEqual(self.app.metrics.upstream_ratelimit_remaining.labels("hub")._value.get(), 76)


class MigrationTests(SynchronousTestCase):
    def test_rows_from_before_namespaces_are_the_default_namespace(self):
        """An index at schema 4 migrates to 5 untouched: its tags are the default namespace's, and the
        upstreams tables start empty and unseeded (seeding happens once)."""
        import harbor_cache.index.migrations as migrations
        from harbor_cache.index import Index

        def run(coro):
            return self.successResultOf(Deferred.fromCoroutine(coro))

        pool = sqlite_pool(self)
        index = Index(pool)
        everything = migrations.MIGRATIONS
        before_namespaces = self.patch(migrations, "MIGRATIONS", everything[:4])
        self.assertEqual(run(index.migrate()), 4)
        run(index.put_tag("library/test", "1", "sha256:" + "a" * 64, "proxy", OCI_MANIFEST, 1.0))
        before_namespaces.restore()
        self.assertEqual(run(index.migrate()), len(everything))
        self.assertEqual(run(index.get_tag("library/test", "1")).digest, "sha256:" + "a" * 64)
        self.assertEqual(run(index.list_upstreams()), (0, []))
        self.assertTrue(run(index.seed_upstreams([], 2.0)))
        self.assertFalse(run(index.seed_upstreams([], 3.0)))


class CheckAccessTests(SynchronousTestCase):
    """RegistryUpstream.check_access, behind POST /api/v1/upstreams/test."""

    def check(self, registry, username=None, password=None):
        from twisted.internet.task import Clock

        agent = RequestTraversalAgent(registry)
        up = RegistryUpstream(
            UpstreamConfig("t", "http://upstream.test", username=username, password=password),
            HTTPClient(agent),
            Clock(),
            header_timeout=10,
        )
        d = Deferred.fromCoroutine(up.check_access())
        for _ in range(20):
            agent.flush()
        return self.successResultOf(d)

    def test_good_and_bad_credentials(self):
        """A token-protected registry: our Basic credentials at its realm decide ``authenticated``."""
        registry = FakeRegistry()
        registry.bearer, registry.basic_auth = "tok", ("u", "p")
        good = self.check(registry, "u", "p")
        self.assertEqual((good["reachable"], good["authenticated"], good["status"]), (True, True, 401))
        bad = self.check(registry, "u", "wrong")
        self.assertEqual((bad["reachable"], bad["authenticated"]), (True, False))
        self.assertTrue(bad["error"])

    def test_unreachable_or_broken(self):
        """A 5xx on /v2/ is not reachable; nothing further is tried."""
        registry = FakeRegistry()
        registry.status = 503
        result = self.check(registry)
        self.assertEqual((result["reachable"], result["authenticated"], result["status"]), (False, None, 503))
