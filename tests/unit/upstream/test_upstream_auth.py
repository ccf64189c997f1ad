"""The upstream client: token dance, Basic credentials, redirects, IPv6 literal hosts."""

import os

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.upstream.http import request_url
from tests.fakes import FakeRegistry, Harness


class UpstreamAuthTests(SynchronousTestCase):
    def setUp(self):
        self.up = FakeRegistry()
        self.data = os.urandom(5000)
        self.digest = self.up.add_blob(self.data)

    def get(self, h, path):
        response = self.successResultOf(h.request("GET", path))
        return response, self.successResultOf(h.body(response))

    def test_bearer_token_dance_and_cache(self):
        """A Bearer challenge is answered with a token from the realm, cached per scope."""
        self.up.bearer = "tok-123"
        self.up.basic_auth = ("robot", "secret")
        h = Harness(self.mktemp(), self.up, username="robot", password="secret")
        response, body = self.get(h, "/v2/library/app/blobs/" + self.digest)
        self.assertEqual((response.code, body), (200, self.data))
        self.assertEqual(self.up.tokens_issued, 1)
        self.assertEqual(self.up.last_token_scope, "repository:library/app:pull")
        self.up.blobs[self.up.add_blob(b"second")] = b"second"
        self.get(h, "/v2/library/app/blobs/" + self.up.add_blob(b"second"))
        self.assertEqual(self.up.tokens_issued, 1)  # same scope: cached token
        h.clock.advance(301)
        self.get(h, "/v2/library/app/blobs/" + self.up.add_blob(b"third"))
        self.assertEqual(self.up.tokens_issued, 2)  # expired: fetched again

    def test_anonymous_token(self):
        """Without credentials the token endpoint is asked anonymously (Docker Hub's public images)."""
        self.up.bearer = "anon"
        h = Harness(self.mktemp(), self.up)
        response, body = self.get(h, "/v2/library/app/blobs/" + self.digest)
        self.assertEqual(body, self.data)

    def test_basic_credentials(self):
        """A registry that wants Basic gets the configured credentials."""
        self.up.basic_auth = ("u", "p")
        h = Harness(self.mktemp(), self.up, username="u", password="p")
        response, body = self.get(h, "/v2/library/app/blobs/" + self.digest)
        self.assertEqual(body, self.data)

    def test_refused_access_counts_as_unknown(self):
        """An upstream that refuses us (Docker Hub's 401 for unknown names) means 404 here, and is counted."""
        self.up.basic_auth = ("u", "p")
        h = Harness(self.mktemp(), self.up, username="u", password="wrong")
        response, body = self.get(h, "/v2/library/app/manifests/1")
        self.assertEqual(response.code, 404)
        self.assertIn(b"MANIFEST_UNKNOWN", body)
        self.assertEqual(h.metrics.upstream_errors.labels("oci", "fake", "auth")._value.get(), 1)

    def test_blob_redirect_followed_without_credentials(self):
        """Blob redirects (S3/CDN) are followed; Authorization is not sent to the other host."""
        self.up.redirect_blobs = True
        self.up.bearer = "tok"
        h = Harness(self.mktemp(), self.up)
        response, body = self.get(h, "/v2/library/app/blobs/" + self.digest)
        self.assertEqual((response.code, body), (200, self.data))
        self.assertEqual(self.up.cdn_authorization, [None])

    def test_ipv6_literal_upstream(self):
        """http://[::1]:5000: pulls (with the token dance at a realm on [::1]) and probes go through.

        treq's URL handling IDNA-encodes hosts and refused ``::1`` (InvalidCodepoint) before.
        """
        self.up.bearer = "tok"
        self.up.token_realm = b"http://[::1]:5000/token"
        h = Harness(self.mktemp(), self.up, url="http://[::1]:5000")
        response, body = self.get(h, "/v2/library/app/blobs/" + self.digest)
        self.assertEqual((response.code, body), (200, self.data))
        self.assertEqual(self.up.tokens_issued, 1)
        (upstream,) = h.upstreams.upstreams
        d = Deferred.fromCoroutine(upstream.check_access())
        h.flush()
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
