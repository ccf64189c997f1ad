"""The Maven front through its real routes: headers, content types, conditional GETs, ranges,
path traversal, repositories/browse/info documents, POST /token, and the token scope matrix."""

import base64
import hashlib
import json
import os

import bcrypt
import jwt
from twisted.internet import defer
from twisted.web import http

from harbor_cache.auth import credential_stamp
from harbor_cache.testing import UPSTREAM_MODIFIED, rsa_key
from tests.unit.base import MAVEN_START, MavenCacheCase

JAR = "org/example/lib/1.0/lib-1.0.jar"


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class FrontBase(MavenCacheCase):
    def setUp(self):
        super().setUp()
        self.jar = os.urandom(50_000)
        self.upstream.put(JAR, self.jar)
        self.add_user("admin", "admin-pw", "admin")
        self.add_user("writer", "writer-pw", "read-write")
        self.add_user("reader", "reader-pw", "read-only")

    def call(self, method, path, headers=None, body=None):
        response = self.successResultOf(self.request(method, path, headers, body))
        return response, self.successResultOf(self.read_body(response))

    def header(self, response, name):
        values = response.headers.getRawHeaders(name.encode())
        return values[0].decode() if values else None

    def headers(self, response, name):
        return [v.decode() for v in response.headers.getRawHeaders(name.encode()) or []]

    def error_code(self, body):
        return json.loads(body)["errors"][0]["code"]

    def token(self, repositories="", scope="", user="admin", password=None, expires_in=None):
        form = []
        if repositories:
            form.append("repositories=" + repositories)
        if scope:
            form.append("scope=" + scope)
        if expires_in is not None:
            form.append("expires_in=" + str(expires_in))
        response, body = self.call(
            "POST",
            "/token",
            {
                "Authorization": basic(user, password or f"{user.split('-')[0]}-pw"),
                "Content-Type": "application/x-www-form-urlencoded",
            },
            "&".join(form).encode(),
        )
        self.assertEqual(response.code, 200, body)
        return body.decode()


class ArtifactTests(FrontBase):
    def test_get_headers(self):
        """GET: body, Content-Type, Content-Length, Last-Modified; ETag once cached."""
        response, body = self.call("GET", "/artifacts/central/" + JAR)
        self.assertEqual(response.code, 200)
        self.assertEqual(body, self.jar)
        self.assertEqual(self.header(response, "Content-Type"), "application/java-archive")
        self.assertEqual(response.length, len(self.jar))  # the client takes Content-Length out of the headers
        self.assertEqual(self.header(response, "Last-Modified"), http.datetimeToString(UPSTREAM_MODIFIED).decode())
        response, body = self.call("GET", "/artifacts/central/" + JAR)
        self.assertEqual(body, self.jar)
        self.assertEqual(self.header(response, "ETag"), '"%s"' % hashlib.sha256(self.jar).hexdigest())
        self.assertEqual(self.upstream.count("GET", JAR), 1)

    def test_head(self):
        """HEAD: the headers of a GET, no body."""
        self.call("GET", "/artifacts/central/" + JAR)
        response, body = self.call("HEAD", "/artifacts/central/" + JAR)
        self.assertEqual((response.code, body), (200, b""))
        self.assertEqual(self.header(response, "Content-Length"), str(len(self.jar)))
        self.assertEqual(self.header(response, "Content-Type"), "application/java-archive")

    def test_head_cold(self):
        """A cold HEAD answers with the upstream's length and caches the file."""
        response, body = self.call("HEAD", "/artifacts/central/" + JAR)
        self.assertEqual((response.code, body), (200, b""))
        self.assertEqual(self.header(response, "Content-Length"), str(len(self.jar)))
        response, body = self.call("GET", "/artifacts/central/" + JAR)
        self.assertEqual(body, self.jar)
        self.assertEqual(self.upstream.count("GET", JAR), 1)

    def test_content_type_table(self):
        """Content-Type by extension, as the seed's table (checked on GET and in /info)."""
        table = {
            "a/b/1/b-1.jar": "application/java-archive",
            "a/b/1/b-1.pom": "application/xml",
            "a/b/maven-metadata.xml": "application/xml",
            "a/b/1/b-1.jar.sha1x": "application/octet-stream",
            "a/b/1/b-1.pom.sha1": "text/plain",
            "a/b/1/b-1.pom.sha256": "text/plain",
            "a/b/1/b-1.pom.md5": "text/plain",
            "a/b/1/b-1.jar.asc": "application/pgp-signature",
            "a/b/1/b-1.zip": "application/octet-stream",
            "a/b/1/b-1.tar.gz": "application/octet-stream",
        }
        for path in table:
            if path not in self.upstream.files:
                self.upstream.put(path, b"x" + path.encode(), sha1=False)
        for path, ctype in table.items():
            response, _ = self.call("GET", "/artifacts/central/" + path)
            self.assertEqual((path, response.code, self.header(response, "Content-Type")), (path, 200, ctype))
            _, body = self.call("GET", "/repositories/central/info?path=" + path)
            self.assertEqual(json.loads(body)["contentType"], ctype)

    def test_if_none_match(self):
        """If-None-Match with the ETag -> 304 without a body; another ETag -> 200."""
        response, _ = self.call("GET", "/artifacts/central/" + JAR)
        response, _ = self.call("GET", "/artifacts/central/" + JAR)
        etag = self.header(response, "ETag")
        response, body = self.call("GET", "/artifacts/central/" + JAR, {"If-None-Match": etag})
        self.assertEqual((response.code, body), (304, b""))
        self.assertEqual(self.header(response, "ETag"), etag)
        response, body = self.call("GET", "/artifacts/central/" + JAR, {"If-None-Match": '"other"'})
        self.assertEqual((response.code, body), (200, self.jar))

    def test_if_none_match_is_the_shared_matcher(self):
        """The grammar.etags rules, as on /v2/: an unquoted tag, a list, and a comma inside quotes."""
        self.call("GET", "/artifacts/central/" + JAR)
        response, _ = self.call("GET", "/artifacts/central/" + JAR)
        etag = self.header(response, "ETag")
        for value, status in (
            (etag.strip('"'), 304),  # (an exact comparison of the header's bytes refused this)
            ('"a", W/' + etag, 304),
            ('"a, %s"' % etag.strip('"'), 200),
        ):
            response, _ = self.call("GET", "/artifacts/central/" + JAR, {"If-None-Match": value})
            self.assertEqual(response.code, status, value)

    def test_if_modified_since(self):
        """If-Modified-Since at or after Last-Modified -> 304; before -> 200."""
        self.call("GET", "/artifacts/central/" + JAR)
        same = http.datetimeToString(UPSTREAM_MODIFIED).decode()
        response, body = self.call("GET", "/artifacts/central/" + JAR, {"If-Modified-Since": same})
        self.assertEqual((response.code, body), (304, b""))
        older = http.datetimeToString(UPSTREAM_MODIFIED - 10).decode()
        response, body = self.call("GET", "/artifacts/central/" + JAR, {"If-Modified-Since": older})
        self.assertEqual((response.code, body), (200, self.jar))

    def test_range(self):
        """A single Range -> 206 with Content-Range; unsatisfiable -> 416."""
        self.call("GET", "/artifacts/central/" + JAR)
        response, body = self.call("GET", "/artifacts/central/" + JAR, {"Range": "bytes=10-19"})
        self.assertEqual(response.code, 206)
        self.assertEqual(body, self.jar[10:20])
        self.assertEqual(self.header(response, "Content-Range"), "bytes 10-19/%d" % len(self.jar))
        response, _ = self.call("GET", "/artifacts/central/" + JAR, {"Range": "bytes=999999-"})
        self.assertEqual(response.code, 416)

    def test_not_found(self):
        response, body = self.call("GET", "/artifacts/central/no/such/1/such-1.jar")
        self.assertEqual(response.code, 404)
        self.assertEqual(self.error_code(body), "NOT_FOUND")
        response, body = self.call("GET", "/artifacts/nope/" + JAR)
        self.assertEqual(response.code, 404)
        self.assertEqual(self.upstream.total(), 1)

    def test_sha1_mismatch_aborts_client(self):
        """A body that fails the .sha1 check never reaches the client complete."""
        self.upstream.put(JAR, self.jar, sha1="1" * 40)
        self.upstream.hold = True
        d = self.request("GET", "/artifacts/central/" + JAR)
        response = self.successResultOf(d)
        self.assertEqual(response.code, 200)
        body = self.read_body(response)
        self.assertNoResult(body)
        self.upstream.release()
        self.flush()
        self.failureResultOf(body)
        self.assertIsNone(self.successResultOf(self.drive(self.app.index.get_entry("maven", "central", JAR))))

    def test_stale_warning(self):
        """Metadata served stale carries Warning: 110."""
        self.upstream.put("g/a/maven-metadata.xml", b"<metadata/>")
        self.call("GET", "/artifacts/central/g/a/maven-metadata.xml")
        self.clock.advance(301)
        self.http.down = True
        response, body = self.call("GET", "/artifacts/central/g/a/maven-metadata.xml")
        self.assertEqual((response.code, body), (200, b"<metadata/>"))
        self.assertEqual(self.header(response, "Warning"), '110 - "Response is Stale"')


TRAVERSAL = [
    "/artifacts/central/../etc/passwd",
    "/artifacts/central/org/../../etc/passwd",
    "/artifacts/central/org/%2e%2e/%2e%2e/etc/passwd",
    "/artifacts/central/org/%2E%2E/x",
    "/artifacts/central/%2e%2e%2fetc%2fpasswd",
    "/artifacts/central/org%2f..%2fx",
    "/artifacts/central/org%2Fx",
    "/artifacts/central/./org/x.jar",
    "/artifacts/central/org/./x.jar",
    "/artifacts/central/org/%2e/x.jar",
    "/artifacts/central/org//x.jar",
    "/artifacts/central//etc/passwd",
    "/artifacts/central/org/x.jar%00.pom",
    "/artifacts/central/org%5c..%5cx",
    "/artifacts/central/org\\..\\x",
    "/artifacts/central/%252e%252e/x",
    "/artifacts/central/org/%0a/x",
    "/artifacts/central/",
    "/artifacts/central",
    "/artifacts/%2e%2e/x.jar",
    "/artifacts/..%2fcentral/x.jar",
]


TRAVERSAL += [
    "/artifacts/central/org/..;/..;/etc/passwd",
    "/artifacts/central/org/..;x=1/lib.jar",
    "/artifacts/central/org/%2e%2e;/lib.jar",
    "/artifacts/central/org/lib;jsessionid=1/lib.jar",
    "/artifacts/central/org/.../lib.jar",
    "/artifacts/central/org/..%20/lib.jar",
    "/artifacts/central/org/%EF%BC%8E%EF%BC%8E/lib.jar",
]


class TraversalTests(FrontBase):
    def test_long_path_is_414_without_upstream(self):
        """A path over 2048 characters: 414 URI_TOO_LONG in the error format, nothing sent upstream."""
        response, body = self.call("GET", "/artifacts/central/" + "a/" * 1100 + "x.jar")
        self.assertEqual((response.code, self.error_code(body)), (414, "URI_TOO_LONG"))
        self.assertEqual(self.header(response, "Content-Type"), "application/json")
        self.assertEqual(self.upstream.total(), 0)

    def test_huge_range_numbers(self):
        """Range values with thousands of digits on a Maven file: 416 or the clamped range, never 500."""
        self.call("GET", "/artifacts/central/" + JAR)
        response, _ = self.call("GET", "/artifacts/central/" + JAR, {"Range": "bytes=" + "9" * 5000 + "-"})
        self.assertEqual(response.code, 416)
        response, body = self.call("GET", "/artifacts/central/" + JAR, {"Range": "bytes=5-" + "9" * 5000})
        self.assertEqual((response.code, body), (206, self.jar[5:]))

    def test_corpus(self):
        """Every unsafe path is a 400 (GET, HEAD and DELETE) before any upstream or file access."""
        tmp_before = os.listdir(self.app.storage.tmp_dir)
        for path in TRAVERSAL:
            for method in ("GET", "HEAD", "DELETE"):
                response, body = self.call(method, path)
                self.assertEqual((path, method, response.code), (path, method, 400), body)
        self.assertEqual(self.upstream.total(), 0)
        self.assertEqual(os.listdir(self.app.storage.tmp_dir), tmp_before)

    def test_not_utf8(self):
        """Percent-encoded bytes that are not UTF-8 are refused with 400 (by Klein, which logs them)."""
        for path in ("/artifacts/central/%ff%fe/x.jar", "/artifacts/central/%c0%ae%c0%ae/x.jar"):
            response, _ = self.call("GET", path)
            self.assertEqual(response.code, 400)
        self.flushLoggedErrors(UnicodeDecodeError)
        self.assertEqual(self.upstream.total(), 0)

    def test_browse_and_info_paths(self):
        """browse/info refuse unsafe path parameters with 400."""
        for bad in ("..", "a/../b", "a//b", "a\\b", "/etc", "a/./b", "a%2e%2e"):
            for what in ("browse", "info"):
                response, body = self.call("GET", "/repositories/central/%s?path=%s" % (what, bad.replace("%", "%25")))
                self.assertEqual((bad, what, response.code), (bad, what, 400), body)


class RepositoryDocumentTests(FrontBase):
    def setUp(self):
        super().setUp()
        self.call("GET", "/artifacts/central/" + JAR)

    def test_repositories(self):
        response, body = self.call("GET", "/repositories")
        self.assertEqual(response.code, 200)
        self.assertEqual(self.header(response, "Content-Type"), "application/json")
        doc = json.loads(body)
        self.assertEqual([r["id"] for r in doc["repositories"]], ["central", "secret"])
        central = doc["repositories"][0]
        self.assertEqual(set(central), {"id", "url", "artifactCount", "totalSize", "lastUpdated", "isPrivate", "type"})
        self.assertEqual(
            (central["artifactCount"], central["totalSize"], central["isPrivate"]), (1, len(self.jar), False)
        )
        self.assertRegex(central["lastUpdated"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(doc["repositories"][1]["lastUpdated"], None)
        self.assertEqual(doc["repositories"][1]["isPrivate"], True)

    def test_browse(self):
        _, body = self.call("GET", "/repositories/central/browse")
        doc = json.loads(body)
        self.assertEqual(
            doc,
            {
                "repositoryId": "central",
                "currentPath": "",
                "parentPath": None,
                "entries": [
                    {"name": "org", "type": "directory", "path": "org", "lastModified": "2020-09-13T12:26:40Z"}
                ],
            },
        )
        _, body = self.call("GET", "/repositories/central/browse?path=org/example/lib/1.0")
        doc = json.loads(body)
        self.assertEqual(doc["parentPath"], "org/example/lib")
        self.assertEqual(
            doc["entries"][0],
            {
                "name": "lib-1.0.jar",
                "type": "file",
                "path": JAR,
                "size": len(self.jar),
                "lastModified": "2020-09-13T12:26:40Z",
            },
        )

    def test_browse_errors(self):
        response, body = self.call("GET", "/repositories/nope/browse")
        self.assertEqual(response.code, 400)
        response, body = self.call("GET", "/repositories/central/browse?path=not/cached")
        self.assertEqual(response.code, 400)

    def test_info(self):
        _, body = self.call("GET", "/repositories/central/info?path=" + JAR)
        self.assertEqual(
            json.loads(body),
            {
                "repositoryId": "central",
                "path": JAR,
                "name": "lib-1.0.jar",
                "type": "file",
                "size": len(self.jar),
                "lastModified": "2020-09-13T12:26:40Z",
                "contentType": "application/java-archive",
                "sha1": hashlib.sha1(self.jar).hexdigest(),
                "sha256": hashlib.sha256(self.jar).hexdigest(),
            },
        )

    def test_info_errors(self):
        """Missing path, unknown file, unknown repository: 400."""
        for path in (
            "/repositories/central/info",
            "/repositories/central/info?path=",
            "/repositories/central/info?path=no/such.jar",
            "/repositories/nope/info?path=" + JAR,
        ):
            response, body = self.call("GET", path)
            self.assertEqual((path, response.code), (path, 400))
            self.assertIn("errors", json.loads(body))

    def test_jwks(self):
        response, body = self.call("GET", "/.well-known/jwks.json")
        self.assertEqual(response.code, 200)
        key = json.loads(body)["keys"][0]
        self.assertEqual((key["kty"], key["alg"], key["kid"]), ("RSA", "RS256", self.app.artifact_tokens.kid))


class TokenEndpointTests(FrontBase):
    def test_token_defaults(self):
        """No parameters: every repository, every scope the role allows, 3 hours, raw JWT as text/plain."""
        response, body = self.call("POST", "/token", {"Authorization": basic("reader", "reader-pw")})
        self.assertEqual(response.code, 200)
        self.assertEqual(self.header(response, "Content-Type"), "text/plain")
        claims = self.app.artifact_tokens.verify(body.decode())
        self.assertEqual(claims["sub"], "reader")
        self.assertEqual(claims["aud"], "kagami")
        self.assertEqual(claims["iss"], "http://cache.test")
        self.assertEqual(claims["repositories"], ["central", "secret"])
        self.assertEqual(claims["scope"], ["artifacts:read"])
        self.assertEqual(claims["exp"] - claims["iat"], 3 * 3600)
        self.assertEqual(jwt.get_unverified_header(body.decode())["alg"], "RS256")

    def test_token_as_asked(self):
        token = self.token("secret", "artifacts:read,artifacts:delete", user="writer", expires_in=24)
        claims = self.app.artifact_tokens.verify(token)
        self.assertEqual(
            (claims["repositories"], claims["scope"]), (["secret"], ["artifacts:read", "artifacts:delete"])
        )
        self.assertEqual(claims["exp"] - claims["iat"], 24 * 3600)

    def test_token_refusals(self):
        """No credentials/wrong password 401 (Basic challenge); over-asking 403; unknown repo/scope, bad expiry 400."""
        response, body = self.call("POST", "/token")
        self.assertEqual(response.code, 401)
        self.assertEqual(self.headers(response, "WWW-Authenticate"), ['Basic realm="harbor-cache"'])
        for auth in (basic("reader", "wrong"), basic("ghost", "x"), "Bearer " + self.token()):
            response, _ = self.call("POST", "/token", {"Authorization": auth})
            self.assertEqual(response.code, 401)
        cases = [
            ("scope=artifacts:delete", 403),
            ("repositories=nope", 400),
            ("scope=artifacts:write", 403),
            ("scope=artifacts:admin", 400),
            ("expires_in=abc", 400),
            ("expires_in=-1", 400),
            ("expires_in=100000", 400),
        ]
        for form, status in cases:
            response, body = self.call(
                "POST",
                "/token",
                {"Authorization": basic("reader", "reader-pw"), "Content-Type": "application/x-www-form-urlencoded"},
                form.encode(),
            )
            self.assertEqual((form, response.code), (form, status), body)
            self.assertIn("errors", json.loads(body))


class ScopeMatrixTests(FrontBase):
    def get_secret(self, auth=None):
        return self.call("GET", "/artifacts/secret/" + JAR, {"Authorization": auth} if auth else None)

    def assertChallenge(self, response, expected):
        self.assertEqual(self.headers(response, "WWW-Authenticate")[0], expected)

    def test_private_needs_token(self):
        """No token: 401 with WWW-Authenticate: Bearer (and a Basic challenge for Maven's client)."""
        response, body = self.get_secret()
        self.assertEqual(response.code, 401)
        self.assertEqual(self.headers(response, "WWW-Authenticate"), ["Bearer", 'Basic realm="harbor-cache"'])
        self.assertEqual(self.error_code(body), "UNAUTHORIZED")
        self.assertEqual(self.upstream.total(), 0)

    def test_matrix(self):
        """(token repositories, scopes, how it is sent) -> status of GET on the private repository."""
        read_secret = self.token("secret", "artifacts:read")
        read_central = self.token("central", "artifacts:read")
        delete_secret = self.token("secret", "artifacts:delete")
        both = self.token("central,secret", "artifacts:read,artifacts:delete")
        cases = [
            ("Bearer " + read_secret, 200),
            (basic("admin", read_secret), 200),
            (basic("anyone", read_secret), 401),  # the Basic user must be the token's subject
            (basic("reader", read_secret), 401),
            ("Bearer " + both, 200),
            ("Bearer " + read_central, 403),
            ("Bearer " + delete_secret, 403),
            (basic("admin", "admin-pw"), 401),  # a password is not a token
            ("Bearer not-a-jwt", 401),
            ("Digest foo", 401),
        ]
        for auth, status in cases:
            response, body = self.get_secret(auth)
            self.assertEqual((auth[:20], response.code), (auth[:20], status), body)
            if status == 200:
                self.assertEqual(body, self.jar)
            elif status == 403:
                self.assertTrue(
                    self.headers(response, "WWW-Authenticate")[0].startswith(
                        'Bearer error="insufficient_scope", error_description="'
                    )
                )
                self.assertEqual(self.error_code(body), "DENIED")
            else:
                self.assertTrue(
                    self.headers(response, "WWW-Authenticate")[0].startswith(
                        'Bearer error="invalid_token", error_description="'
                    )
                )

    def test_browse_info_private(self):
        response, _ = self.call("GET", "/repositories/secret/browse")
        self.assertEqual(response.code, 401)
        response, _ = self.call(
            "GET", "/repositories/secret/browse", {"Authorization": "Bearer " + self.token("secret", "artifacts:read")}
        )
        self.assertEqual(response.code, 200)
        response, _ = self.call(
            "GET",
            "/repositories/secret/info?path=x",
            {"Authorization": "Bearer " + self.token("central", "artifacts:read")},
        )
        self.assertEqual(response.code, 403)

    def test_expired(self):
        token = self.token("secret", "artifacts:read", expires_in=1)
        self.clock.advance(3601)
        response, _ = self.get_secret("Bearer " + token)
        self.assertEqual(response.code, 401)
        self.assertIn('error="invalid_token"', self.headers(response, "WWW-Authenticate")[0])
        self.assertIn("expired", self.headers(response, "WWW-Authenticate")[0])

    def test_tampered(self):
        """A token whose payload was changed (wider repositories) fails its signature."""
        token = self.token("central", "artifacts:read")
        head, payload, sig = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["repositories"] = ["central", "secret"]
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        response, _ = self.get_secret("Bearer " + ".".join([head, forged, sig]))
        self.assertEqual(response.code, 401)
        self.assertIn('error="invalid_token"', self.headers(response, "WWW-Authenticate")[0])

    def test_wrong_audience_and_issuer(self):
        """Properly signed tokens for another audience or issuer are refused."""
        now = int(self.clock.seconds())
        admin = self.successResultOf(defer.Deferred.fromCoroutine(self.app.index.get_user_by_name("admin")))
        base = {
            "iss": "http://cache.test",
            "aud": "kagami",
            "sub": "admin",
            "repositories": ["secret"],
            "scope": ["artifacts:read"],
            "iat": now,
            "exp": now + 3600,
            "cst": credential_stamp(admin.password_hash),
        }
        good = jwt.encode(base, rsa_key(), algorithm="RS256", headers={"kid": self.app.artifact_tokens.kid})
        self.assertEqual(self.get_secret("Bearer " + good)[0].code, 200)
        for change in ({"aud": "harbor-cache"}, {"iss": "http://elsewhere"}):
            token = jwt.encode({**base, **change}, rsa_key(), algorithm="RS256")
            response, _ = self.get_secret("Bearer " + token)
            self.assertEqual((change, response.code), (change, 401))
        hs = jwt.encode(base, b"k" * 32, algorithm="HS256")
        self.assertEqual(self.get_secret("Bearer " + hs)[0].code, 401)

    def test_token_follows_the_user(self):
        """Deleted user, demoted role, changed password: the token stops working at once (401 / 403)."""
        index = self.app.index

        def run(coro):
            return self.successResultOf(defer.Deferred.fromCoroutine(coro))

        writer = run(index.get_user_by_name("writer"))
        both = self.token("central,secret", "artifacts:read,artifacts:delete", user="writer", password="writer-pw")
        self.assertEqual(self.get_secret("Bearer " + both)[0].code, 200)
        # Demoted to read-only: reading still works, deleting does not (403 insufficient_scope).
        run(index.update_user(writer.id, "read-only", None, MAVEN_START))
        self.assertEqual(self.get_secret("Bearer " + both)[0].code, 200)
        response, body = self.call("DELETE", "/artifacts/central/" + JAR, {"Authorization": "Bearer " + both})
        self.assertEqual((response.code, self.error_code(body)), (403, "DENIED"))
        # A password change revokes every token issued before it; a new one works.
        run(index.update_user(writer.id, None, bcrypt.hashpw(b"new-pw", bcrypt.gensalt(4)).decode(), MAVEN_START))
        response, _ = self.get_secret("Bearer " + both)
        self.assertEqual(response.code, 401)
        self.assertIn("password changed", self.headers(response, "WWW-Authenticate")[0])
        fresh = self.token("secret", "artifacts:read", user="writer", password="new-pw")
        self.assertEqual(self.get_secret("Bearer " + fresh)[0].code, 200)
        # Deleted: 401, even through Basic with its own name.
        run(index.delete_user(writer.id))
        for auth in ("Bearer " + fresh, basic("writer", fresh)):
            response, _ = self.get_secret(auth)
            self.assertEqual(response.code, 401)
            self.assertIn("user no longer exists", self.headers(response, "WWW-Authenticate")[0])
        # Re-created under the same name: a new password hash, the old tokens stay dead.
        self.add_user("writer", "new-pw", "read-write")
        self.assertEqual(self.get_secret("Bearer " + fresh)[0].code, 401)

    def test_public_get_ignores_tokens(self):
        """Public repositories serve anyone, whatever Authorization header comes along."""
        response, _ = self.call("GET", "/artifacts/central/" + JAR, {"Authorization": "Bearer garbage"})
        self.assertEqual(response.code, 200)


class DeleteTests(FrontBase):
    def setUp(self):
        super().setUp()
        self.call("GET", "/artifacts/central/" + JAR)

    def test_delete_needs_delete_scope(self):
        """DELETE on a public repository: 401 without a token, 403 with read only, 204 with delete, then 404."""
        path = "/artifacts/central/" + JAR
        response, _ = self.call("DELETE", path)
        self.assertEqual(response.code, 401)
        self.assertEqual(self.headers(response, "WWW-Authenticate")[0], "Bearer")
        response, _ = self.call("DELETE", path, {"Authorization": "Bearer " + self.token("central", "artifacts:read")})
        self.assertEqual(response.code, 403)
        response, _ = self.call(
            "DELETE", path, {"Authorization": "Bearer " + self.token("secret", "artifacts:delete", user="writer")}
        )
        self.assertEqual(response.code, 403)
        delete = "Bearer " + self.token("central", "artifacts:delete", user="writer")
        response, body = self.call("DELETE", path, {"Authorization": delete})
        self.assertEqual((response.code, body), (204, b""))
        response, _ = self.call("DELETE", path, {"Authorization": delete})
        self.assertEqual(response.code, 404)
        response, _ = self.call("GET", "/repositories/central/info?path=" + JAR)
        self.assertEqual(response.code, 400)

    def test_delete_is_audited(self):
        """A successful DELETE leaves an artifact.delete record naming the token's user; refused ones leave none."""
        path = "/artifacts/central/" + JAR
        self.call("DELETE", path, {"Authorization": "Bearer " + self.token("central", "artifacts:read")})
        self.call(
            "DELETE", path, {"Authorization": "Bearer " + self.token("central", "artifacts:delete", user="writer")}
        )
        total, rows = self.successResultOf(defer.Deferred.fromCoroutine(self.app.index.audit_page(offset=0, limit=10)))
        self.assertEqual(
            [(r.action, r.actor, r.target) for r in rows], [("artifact.delete", "writer", "central/" + JAR)]
        )

    def test_delete_directory(self):
        delete = "Bearer " + self.token("central", "artifacts:delete")
        response, _ = self.call("DELETE", "/artifacts/central/org/example/", {"Authorization": delete})
        self.assertEqual(response.code, 204)
        _, body = self.call("GET", "/repositories/central/browse")
        self.assertEqual(json.loads(body)["entries"], [])
        response, _ = self.call("DELETE", "/artifacts/nope/org", {"Authorization": delete})
        self.assertEqual(response.code, 404)
