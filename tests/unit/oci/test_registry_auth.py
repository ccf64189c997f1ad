"""Who may do what on /v2/: the token endpoint, Basic and Bearer credentials, roles, anonymous pulls."""

from __future__ import annotations

import json

from twisted.internet.defer import Deferred

from tests.unit.base import HostedRegistryCase, basic, error_code, header, sha256

PUBLIC_URL = HostedRegistryCase.public_url

NAME = "team/app"
CHALLENGE = f'Bearer realm="{PUBLIC_URL}/v2/token",service="harbor-cache"'


def bearer(token: str) -> dict:
    return {"Authorization": "Bearer " + token}


class MatrixTests(HostedRegistryCase):
    def start_upload(self, user=None, headers=None):
        return self.fetch("POST", f"/v2/{NAME}/blobs/uploads/", user=user, headers=headers)

    def token(self, user=None, scope=f"repository:{NAME}:pull,push", password=None):
        headers = {}
        if user is not None:
            headers = {k.decode(): v[0] for k, v in basic(user, password).items()}
        query = f"?service=harbor-cache&scope={scope}" if scope else "?service=harbor-cache"
        return self.fetch("GET", "/v2/token" + query, headers=headers, user=None)

    def test_ping_challenges_anonymous(self):
        """GET /v2/ without credentials: 401 with the Bearer challenge naming /v2/token."""
        response, body = self.fetch("GET", "/v2/", user=None)
        self.assertEqual(response.code, 401)
        self.assertEqual(header(response, "WWW-Authenticate"), CHALLENGE)
        self.assertEqual(error_code(body), "UNAUTHORIZED")

    def test_ping_with_basic(self):
        """GET /v2/ with valid Basic credentials: 200 {}."""
        response, body = self.fetch("GET", "/v2/", user="reader")
        self.assertEqual((response.code, body), (200, b"{}"))

    def test_wrong_password(self):
        """Wrong Basic credentials: 401 with the challenge, even for a pull."""
        response, _ = self.fetch("GET", f"/v2/{NAME}/tags/list", headers=None, user=None)
        headers = {k.decode(): v[0] for k, v in basic("admin", "nope").items()}
        response, body = self.fetch("GET", f"/v2/{NAME}/manifests/x", headers=headers, user=None)
        self.assertEqual(response.code, 401)
        self.assertTrue(header(response, "WWW-Authenticate").startswith("Bearer realm="))

    def test_anonymous_pull_allowed_by_setting(self):
        """With registry.anonymous_pull on, an anonymous pull reaches the content (404 here, not 401)."""
        response, body = self.fetch("GET", f"/v2/{NAME}/manifests/missing", user=None)
        self.assertEqual(response.code, 404)

    def test_anonymous_push_refused_with_challenge(self):
        """Anonymous push: 401 with scope pull,push in the challenge."""
        response, _ = self.start_upload()
        self.assertEqual(response.code, 401)
        self.assertEqual(header(response, "WWW-Authenticate"), CHALLENGE + f',scope="repository:{NAME}:pull,push"')

    def test_read_only_push_denied(self):
        """A read-only user pushing: 403 DENIED."""
        response, body = self.start_upload("reader")
        self.assertEqual((response.code, error_code(body)), (403, "DENIED"))

    def test_read_only_manifest_put_and_delete_denied(self):
        """read-only may neither PUT nor DELETE manifests or blobs."""
        body = self.image_manifest(NAME, [b"l"])
        self.assertEqual(self.put_manifest(NAME, "v1", body, user="reader")[0].code, 403)
        self.put_manifest(NAME, "v1", body)
        self.assertEqual(self.fetch("DELETE", f"/v2/{NAME}/manifests/{sha256(body)}", user="reader")[0].code, 403)
        self.assertEqual(self.fetch("DELETE", f"/v2/{NAME}/blobs/{sha256(b'l')}", user="reader")[0].code, 403)

    def test_read_write_and_admin_push(self):
        """read-write and admin may push."""
        for user in ("writer", "admin"):
            response, _ = self.start_upload(user)
            self.assertEqual(response.code, 202, user)

    def test_token_for_writer(self):
        """GET /v2/token with Basic: token, access_token, expires_in, issued_at; grants pull,push."""
        response, body = self.token("writer")
        self.assertEqual(response.code, 200)
        doc = json.loads(body)
        self.assertEqual(set(doc), {"token", "access_token", "expires_in", "issued_at"})
        self.assertEqual(doc["token"], doc["access_token"])
        claims = self.app.registry_tokens.verify(doc["token"])
        self.assertEqual(claims["sub"], "writer")
        self.assertEqual(claims["access"], [{"type": "repository", "name": NAME, "actions": ["pull", "push"]}])
        response, _ = self.start_upload(headers=bearer(doc["token"]))
        self.assertEqual(response.code, 202)

    def test_token_narrowed_for_reader(self):
        """A read-only user asking for pull,push gets a pull-only token; pushing with it is 403."""
        token = json.loads(self.token("reader")[1])["token"]
        self.assertEqual(self.app.registry_tokens.verify(token)["access"][0]["actions"], ["pull"])
        response, body = self.start_upload(headers=bearer(token))
        self.assertEqual((response.code, error_code(body)), (403, "DENIED"))

    def test_narrow_token_of_writer_asks_for_more(self):
        """A writer's pull-only token used for a push: 401 insufficient_scope, so the client fetches a new one."""
        token = json.loads(self.token("writer", scope=f"repository:{NAME}:pull")[1])["token"]
        response, _ = self.start_upload(headers=bearer(token))
        self.assertEqual(response.code, 401)
        self.assertIn('error="insufficient_scope"', header(response, "WWW-Authenticate"))

    def test_token_for_other_repository_does_not_apply(self):
        """A token for one repository grants nothing on another."""
        token = json.loads(self.token("writer", scope="repository:other/repo:pull,push")[1])["token"]
        response, _ = self.start_upload(headers=bearer(token))
        self.assertEqual(response.code, 401)

    def test_anonymous_token(self):
        """No credentials: a token with pull only (anonymous pulls on); pushing with it is 401."""
        response, body = self.token()
        token = json.loads(body)["token"]
        claims = self.app.registry_tokens.verify(token)
        self.assertEqual((claims["sub"], claims["access"][0]["actions"]), ("", ["pull"]))
        self.assertEqual(self.start_upload(headers=bearer(token))[0].code, 401)

    def test_token_bad_password(self):
        """Wrong credentials at the token endpoint: 401."""
        response, body = self.token("writer", password="wrong")
        self.assertEqual((response.code, error_code(body)), (401, "UNAUTHORIZED"))

    def test_expired_token(self):
        """An expired token: 401 with error=invalid_token."""
        token = json.loads(self.token("writer")[1])["token"]
        self.clock.advance(self.app.registry_tokens.lifetime + 1)
        response, _ = self.start_upload(headers=bearer(token))
        self.assertEqual(response.code, 401)
        self.assertIn('error="invalid_token"', header(response, "WWW-Authenticate"))

    def test_forged_token(self):
        """A token signed with another key is refused."""
        from harbor_cache.auth import RegistryTokens

        other = RegistryTokens(b"z" * 32, self.clock, issuer=PUBLIC_URL)
        token = other.mint("admin", [{"type": "repository", "name": NAME, "actions": ["*"]}])
        self.assertEqual(self.start_upload(headers=bearer(token))[0].code, 401)

    def test_wildcard_scope_spelled_out(self):
        """A writer asking for '*' gets pull, push, delete; admin gets '*' itself."""
        token = json.loads(self.token("writer", scope=f"repository:{NAME}:*")[1])["token"]
        self.assertEqual(self.app.registry_tokens.verify(token)["access"][0]["actions"], ["pull", "push", "delete"])
        token = json.loads(self.token("admin", scope=f"repository:{NAME}:*")[1])["token"]
        self.assertEqual(self.app.registry_tokens.verify(token)["access"][0]["actions"], ["*"])

    def test_mount_needs_pull_on_source(self):
        """A cross-repository mount only succeeds when the caller may pull the source (else a session)."""
        digest = self.push_blob("src/repo", b"layer")
        token = json.loads(self.token("writer", scope=f"repository:{NAME}:pull,push")[1])["token"]
        response, _ = self.fetch(
            "POST", f"/v2/{NAME}/blobs/uploads/?mount={digest}&from=src/repo", headers=bearer(token), user=None
        )
        self.assertEqual(response.code, 202)
        token = json.loads(self.token("writer", scope=f"repository:{NAME}:pull,push repository:src/repo:pull")[1])[
            "token"
        ]
        response, _ = self.fetch(
            "POST", f"/v2/{NAME}/blobs/uploads/?mount={digest}&from=src/repo", headers=bearer(token), user=None
        )
        self.assertEqual(response.code, 201)


class TokenHolderTests(HostedRegistryCase):
    """A registry token is checked against its user on every request, not only at issue."""

    def wait(self, coro):
        return self.successResultOf(Deferred.fromCoroutine(coro))

    def writer_token(self, password="writer-pw"):
        headers = {k.decode(): v[0] for k, v in basic("writer", password).items()}
        response, body = self.fetch("GET", f"/v2/token?scope=repository:{NAME}:pull,push", headers=headers, user=None)
        self.assertEqual(response.code, 200, body)
        return json.loads(body)["token"]

    def push(self, token):
        return self.fetch("POST", f"/v2/{NAME}/blobs/uploads/", headers=bearer(token), user=None)

    def assertRevoked(self, answer, reason):
        response, body = answer
        self.assertEqual((response.code, error_code(body)), (401, "UNAUTHORIZED"))
        self.assertIn('error="invalid_token"', header(response, "WWW-Authenticate"))
        self.assertIn(reason, json.loads(body)["errors"][0]["message"])

    def test_deleted_user_token_stops_pushing(self):
        token = self.writer_token()
        self.assertEqual(self.push(token)[0].code, 202)
        writer = self.wait(self.app.index.get_user_by_name("writer"))
        self.wait(self.app.index.delete_user(writer.id))
        self.assertRevoked(self.push(token), "user no longer exists")

    def test_demoted_user_token_loses_push(self):
        token = self.writer_token()
        writer = self.wait(self.app.index.get_user_by_name("writer"))
        self.wait(self.app.index.update_user(writer.id, "read-only", None, self.clock.seconds()))
        response, body = self.fetch("POST", f"/v2/{NAME}/blobs/uploads/", headers=bearer(token), user=None)
        self.assertEqual((response.code, error_code(body)), (403, "DENIED"))
        # Pulling with it still works (404: nothing there, not 401/403).
        self.assertEqual(self.fetch("GET", f"/v2/{NAME}/manifests/x", headers=bearer(token), user=None)[0].code, 404)

    def test_password_change_revokes_tokens_and_cached_basic(self):
        token = self.writer_token()
        self.assertEqual(self.fetch("POST", f"/v2/{NAME}/blobs/uploads/", user="writer")[0].code, 202)
        writer = self.wait(self.app.index.get_user_by_name("writer"))
        self.wait(self.app.index.update_user(writer.id, None, "changed-pw", self.clock.seconds()))
        self.assertRevoked(self.push(token), "password changed")
        # The old password, although remembered for a minute, no longer passes.
        self.assertEqual(self.fetch("POST", f"/v2/{NAME}/blobs/uploads/", user="writer")[0].code, 401)
        self.assertEqual(self.push(self.writer_token("changed-pw"))[0].code, 202)

    def test_anonymous_token_follows_the_setting(self):
        response, body = self.fetch("GET", f"/v2/token?scope=repository:{NAME}:pull", user=None)
        token = json.loads(body)["token"]
        self.assertEqual(self.fetch("GET", f"/v2/{NAME}/manifests/x", headers=bearer(token), user=None)[0].code, 404)
        self.wait(self.app.settings.update([("registry.anonymous_pull", "false")]))
        self.assertEqual(self.fetch("GET", f"/v2/{NAME}/manifests/x", headers=bearer(token), user=None)[0].code, 401)


class NoAnonymousPullTests(HostedRegistryCase):
    anonymous_pull = False

    def test_anonymous_pull_refused(self):
        """With registry.anonymous_pull off, anonymous pulls get 401 with a pull scope."""
        response, _ = self.fetch("GET", f"/v2/{NAME}/manifests/v1", user=None)
        self.assertEqual(response.code, 401)
        self.assertIn(f'scope="repository:{NAME}:pull"', header(response, "WWW-Authenticate"))

    def test_anonymous_catalog_refused(self):
        """The catalog needs credentials when anonymous pulls are off."""
        self.assertEqual(self.fetch("GET", "/v2/_catalog", user=None)[0].code, 401)
        self.assertEqual(self.fetch("GET", "/v2/_catalog", user="reader")[0].code, 200)

    def test_anonymous_token_grants_nothing(self):
        """An anonymous token request gets a token without access."""
        response, body = self.fetch("GET", f"/v2/token?scope=repository:{NAME}:pull", user=None)
        self.assertEqual(self.app.registry_tokens.verify(json.loads(body)["token"])["access"], [])

    def test_reader_pulls(self):
        """A read-only user may pull."""
        self.assertEqual(self.fetch("GET", f"/v2/{NAME}/manifests/v1", user="reader")[0].code, 404)
