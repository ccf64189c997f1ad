"""Tests for L{harbor_cache.maven.auth}: challenges and token checks, without the front.

The behaviour over HTTP (401/403 with challenges, ``POST /token``, JWKS) is
tested through the front in test_maven_front; these pin the module's own
seam: what it raises for which header, with which challenges.
"""

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from harbor_cache.maven.auth import BASIC_CHALLENGE, READ, ArtifactAuthorizer, AuthChallenge, bearer_error


class _Tokens:
    def verify(self, token):
        raise AssertionError("no token should be verified")

    def jwks(self):
        return {"keys": ["k"]}


def _request(authorization: bytes | None) -> DummyRequest:
    request = DummyRequest([b""])
    if authorization is not None:
        request.requestHeaders.setRawHeaders(b"Authorization", [authorization])
    return request


class ArtifactAuthorizerTests(SynchronousTestCase):
    def setUp(self):
        self.auth = ArtifactAuthorizer(_Tokens(), index=None, credentials=None, repository_ids=lambda: ["central"])

    def refusal(self, request) -> AuthChallenge:
        return self.failureResultOf(
            Deferred.fromCoroutine(self.auth.authorize(request, "central", READ)), AuthChallenge
        ).value

    def test_no_credentials_is_challenged_with_bearer_and_basic(self):
        """Maven's client only sends credentials when challenged with a scheme it knows: Basic too."""
        e = self.refusal(_request(None))
        self.assertEqual((e.http_status, e.code, e.challenges), (401, "UNAUTHORIZED", ["Bearer", BASIC_CHALLENGE]))

    def test_malformed_header_is_invalid_token(self):
        """An Authorization header that is neither Bearer nor Basic: 401 invalid_token."""
        e = self.refusal(_request(b"Bearer"))
        self.assertEqual(e.http_status, 401)
        self.assertEqual(e.challenges, [bearer_error("invalid_token", "malformed Authorization header")])

    def test_jwks_is_the_token_keys(self):
        self.assertEqual(self.auth.jwks(), {"keys": ["k"]})

    def test_bearer_error_escapes_the_description(self):
        """Quotes and backslashes in a reason cannot end the quoted string early."""
        self.assertEqual(bearer_error("e", 'a"b\\c'), 'Bearer error="e", error_description="a\\"b\\\\c"')

    def test_challenge_code_follows_status(self):
        self.assertEqual(AuthChallenge(403, "no", []).code, "DENIED")
