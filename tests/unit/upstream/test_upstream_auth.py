"""The upstream client: token dance, Basic credentials, redirects, IPv6 literal hosts."""

import os

from twisted.internet.defer import Deferred

from harbor_cache.upstream.http import request_url
from tests.unit.base import OciCacheCase


class UpstreamAuthTests(OciCacheCase):
    """Each test starts its own cache (`start_cache`) with the upstream credentials or URL it needs."""

    def setUp(self):
        super().setUp()
        self.data = os.urandom(5000)
        self.digest = self.upstream.add_blob(self.data)

    def get(self, path):
        response = self.successResultOf(self.request("GET", path))
        return response, self.successResultOf(self.read_body(response))

    def test_bearer_token_dance_and_cache(self):
        """A Bearer challenge is answered with a token from the realm, cached per scope."""
        self.upstream.bearer = "tok-123"
        self.upstream.basic_auth = ("robot", "secret")
        self.start_cache(username="robot", password="secret")
        response, body = self.get("/v2/library/app/blobs/" + self.digest)
        self.assertEqual((response.code, body), (200, self.data))
        self.assertEqual(self.upstream.tokens_issued, 1)
        self.assertEqual(self.upstream.last_token_scope, "repository:library/app:pull")
        self.upstream.blobs[self.upstream.add_blob(b"second")] = b"second"
        self.get("/v2/library/app/blobs/" + self.upstream.add_blob(b"second"))
        self.assertEqual(self.upstream.tokens_issued, 1)  # same scope: cached token
        self.clock.advance(301)
        self.get("/v2/library/app/blobs/" + self.upstream.add_blob(b"third"))
        self.assertEqual(self.upstream.tokens_issued, 2)  # expired: fetched again

    def test_anonymous_token(self):
        """Without credentials the token endpoint is asked anonymously (Docker Hub's public images)."""
        self.upstream.bearer = "anon"
        self.start_cache()
        response, body = self.get("/v2/library/app/blobs/" + self.digest)
        self.assertEqual(body, self.data)

    def test_basic_credentials(self):
        """A registry that wants Basic gets the configured credentials."""
        self.upstream.basic_auth = ("u", "p")
        self.start_cache(username="u", password="p")
        response, body = self.get("/v2/library/app/blobs/" + self.digest)
        self.assertEqual(body, self.data)

    def test_refused_access_counts_as_unknown(self):
        """An upstream that refuses us (Docker Hub's 401 for unknown names) means 404 here, and is counted."""
        self.upstream.basic_auth = ("u", "p")
        self.start_cache(username="u", password="wrong")
        response, body = self.get("/v2/library/app/manifests/1")
        self.assertEqual(response.code, 404)
        self.assertIn(b"MANIFEST_UNKNOWN", body)
        self.assertEqual(self.app.metrics.upstream_errors.labels("oci", "fake", "auth")._value.get(), 1)

    def test_blob_redirect_followed_without_credentials(self):
        """Blob redirects (S3/CDN) are followed; Authorization is not sent to the other host."""
        self.upstream.redirect_blobs = True
        self.upstream.bearer = "tok"
        self.start_cache()
        response, body = self.get("/v2/library/app/blobs/" + self.digest)
        self.assertEqual((response.code, body), (200, self.data))
        self.assertEqual(self.upstream.cdn_authorization, [None])

    def test_ipv6_literal_upstream(self):
        """http://[::1]:5000: pulls (with the token dance at a realm on [::1]) and probes go through.

        treq's URL handling IDNA-encodes hosts and refused ``::1`` (InvalidCodepoint) before.
        """
        self.upstream.bearer = "tok"
        self.upstream.token_realm = b"http://[::1]:5000/token"
        self.start_cache(url="http://[::1]:5000")
        response, body = self.get("/v2/library/app/blobs/" + self.digest)
        self.assertEqual((response.code, body), (200, self.data))
        self.assertEqual(self.upstream.tokens_issued, 1)
        (upstream,) = self.app.upstreams.upstreams
        d = Deferred.fromCoroutine(upstream.check_access())
        self.flush()
        result = self.successResultOf(d)
        self.assertEqual((result["reachable"], result["error"]), (True, None))

    def test_request_url_keeps_an_ip_literal_host(self):
        """What treq sends: the IPv6 host as written, the rest encoded as usual; other hosts untouched."""
        url = request_url("http://[::1]:5000/v2/a b/manifests/1")
        self.assertEqual(url.to_uri().to_text(), "http://[::1]:5000/v2/a%20b/manifests/1")
        self.assertEqual(
            url.replace(query=(("scope", "x"),)).to_uri().to_text(), "http://[::1]:5000/v2/a%20b/manifests/1?scope=x"
        )
        self.assertEqual(request_url("http://127.0.0.1:5000/v2/"), "http://127.0.0.1:5000/v2/")
