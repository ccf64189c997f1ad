"""Immutable tags (issue 28, point 4): rules through /api/v1/immutable-tags, refusals through /v2."""

from __future__ import annotations

import json

from tests.unit.base import HostedRegistryCase, sha256

NAME = "team-a/app"


class ImmutableTagTests(HostedRegistryCase):
    def setUp(self) -> None:
        super().setUp()
        self.v1 = self.image_manifest(NAME, [b"layer-1"])
        self.v2 = self.image_manifest(NAME, [b"layer-2"])
        self.assertEqual(self.put_manifest(NAME, "v1", self.v1)[0].code, 201)
        code, self.rule = self.api("POST", "/api/v1/immutable-tags", {"repositories": "team-a/*", "tags": "v*"})
        self.assertEqual(code, 201, self.rule)

    def denied(self, response_and_body: tuple) -> dict:
        response, body = response_and_body
        self.assertEqual(response.code, 403, body)
        error = json.loads(body)["errors"][0]
        self.assertEqual(error["code"], "DENIED")
        self.assertIn(f"rule {self.rule['id']}", error["message"])
        return error

    def test_moving_a_protected_tag_is_refused_naming_the_rule(self) -> None:
        """A different manifest to v1: 403 DENIED naming the rule; v1 still names the first manifest."""
        error = self.denied(self.put_manifest(NAME, "v1", self.v2))
        self.assertIn("'team-a/*'", error["message"])
        self.assertEqual(error["detail"]["rule"], self.rule["id"])
        response, body = self.fetch("GET", f"/v2/{NAME}/manifests/v1")
        self.assertEqual(body, self.v1)
        self.assertIn(("immutable.refused", f"{NAME}:v1"), self.audit_actions())

    def test_same_digest_new_tags_and_other_names_are_allowed(self) -> None:
        """Re-pushing the same manifest, a new tag, a tag the rule does not match, another namespace: all 201."""
        self.assertEqual(self.put_manifest(NAME, "v1", self.v1)[0].code, 201)
        self.assertEqual(self.put_manifest(NAME, "v2", self.v2)[0].code, 201)
        self.assertEqual(self.put_manifest(NAME, "latest", self.v1)[0].code, 201)
        self.assertEqual(self.put_manifest(NAME, "latest", self.v2)[0].code, 201)
        other = self.image_manifest("team-b/app", [b"x"])
        self.assertEqual(self.put_manifest("team-b/app", "v1", other)[0].code, 201)
        self.assertEqual(self.put_manifest("team-b/app", "v1", self.image_manifest("team-b/app", [b"y"]))[0].code, 201)

    def test_deleting_a_protected_tag_or_its_manifest_is_refused(self) -> None:
        """DELETE of v1 and DELETE by the digest v1 names: 403; an unprotected tag still deletes."""
        self.denied(self.fetch("DELETE", f"/v2/{NAME}/manifests/v1"))
        self.denied(self.fetch("DELETE", f"/v2/{NAME}/manifests/{sha256(self.v1)}"))
        self.assertEqual(self.fetch("GET", f"/v2/{NAME}/manifests/v1")[0].code, 200)
        self.put_manifest(NAME, "dev", self.v2)
        self.assertEqual(self.fetch("DELETE", f"/v2/{NAME}/manifests/dev")[0].code, 202)

    def test_deleting_the_rule_lifts_it(self) -> None:
        """After DELETE of the rule the tag moves; rule changes are audited."""
        code, listed = self.api("GET", "/api/v1/immutable-tags")
        self.assertEqual((code, [r["id"] for r in listed["rules"]]), (200, [self.rule["id"]]))
        self.assertEqual(self.api("DELETE", f"/api/v1/immutable-tags/{self.rule['id']}")[0], 204)
        self.assertEqual(self.api("DELETE", f"/api/v1/immutable-tags/{self.rule['id']}")[0], 404)
        self.assertEqual(self.put_manifest(NAME, "v1", self.v2)[0].code, 201)
        actions = [a for a, _ in self.audit_actions()]
        self.assertIn("immutable.create", actions)
        self.assertIn("immutable.delete", actions)

    def test_bad_rules_are_a_clear_400(self) -> None:
        """Missing fields, brackets, spaces, upper case in a repository glob: 400 BAD_REQUEST saying which field."""
        for body, field in (
            ({"tags": "v*"}, "repositories"),
            ({"repositories": "team-a/*"}, "tags"),
            ({"repositories": "team-a/[ab]", "tags": "v*"}, "repositories"),
            ({"repositories": "Team/*", "tags": "v*"}, "repositories"),
            ({"repositories": "team/*", "tags": "v 1"}, "tags"),
            ({"repositories": "team/*", "tags": 3}, "tags"),
        ):
            code, answer = self.api("POST", "/api/v1/immutable-tags", body)
            self.assertEqual(code, 400, body)
            self.assertEqual(answer["errors"][0]["code"], "BAD_REQUEST")
            self.assertIn(field, answer["errors"][0]["message"])
