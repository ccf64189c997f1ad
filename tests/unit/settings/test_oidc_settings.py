"""``[auth.oidc]``: defaults, required keys, contradictions and unknown keys stop the start with their name."""

from __future__ import annotations

from twisted.trial import unittest

from harbor_cache.settings.startup import ConfigError, parse_config

BASE = {"issuer": "https://sso.example/realms/x/", "client_id": "harbor", "client_secret": "s3cret"}


def parse(**table):
    return parse_config({"auth": {"oidc": {**BASE, **table}}}).oidc


class OidcSettingsTests(unittest.TestCase):
    def refused(self, document, *words):
        with self.assertRaises(ConfigError) as caught:
            parse_config(document)
        for word in words:
            self.assertIn(word, str(caught.exception))

    def test_off_without_the_table(self):
        self.assertIsNone(parse_config({}).oidc)
        self.assertIsNone(parse_config({"auth": {}}).oidc)

    def test_defaults(self):
        c = parse()
        self.assertEqual(c.issuer, "https://sso.example/realms/x")
        self.assertEqual(c.discovery_url, "https://sso.example/realms/x/.well-known/openid-configuration")
        self.assertEqual(c.scopes, ("openid", "profile", "email", "groups"))
        self.assertEqual(
            (c.groups_claim, c.username_claim, c.display_name), ("groups", "preferred_username", "OpenID Connect")
        )
        self.assertEqual((c.ca_file, c.redirect_url, c.default_role, c.group_roles), (None, None, "read-only", {}))

    def test_secret_is_not_in_repr(self):
        self.assertNotIn("s3cret", repr(parse()))

    def test_group_roles(self):
        self.assertEqual(parse(group_roles={"devs": "read-write", "ops": "admin"}).group_roles,
                         {"devs": "read-write", "ops": "admin"})  # fmt: skip
        self.refused({"auth": {"oidc": {**BASE, "group_roles": {"devs": "writer"}}}}, "auth.oidc.group_roles.devs")

    def test_required_keys_are_named(self):
        for key in ("issuer", "client_id", "client_secret"):
            table = {k: v for k, v in BASE.items() if k != key}
            self.refused({"auth": {"oidc": table}}, f"auth.oidc.{key}", "required")

    def test_unknown_key_is_named(self):
        self.refused({"auth": {"oidc": {**BASE, "client_secrte": "x"}}}, "auth.oidc.client_secrte: unknown key")
        self.refused({"auth": {"saml": {}}}, "auth.saml: unknown key")

    def test_contradictions_and_bad_values(self):
        self.refused({"auth": {"oidc": {**BASE, "scopes": ["profile"]}}}, "auth.oidc.scopes", "openid")
        self.refused({"auth": {"oidc": {**BASE, "issuer": "ftp://x"}}}, "auth.oidc.issuer")
        self.refused({"auth": {"oidc": {**BASE, "redirect_url": "cache.example/cb"}}}, "auth.oidc.redirect_url")
        self.refused({"auth": {"oidc": {**BASE, "ca_file": "/nonexistent/ca.pem"}}}, "auth.oidc.ca_file")
        self.refused({"auth": {"oidc": {**BASE, "default_role": "root"}}}, "auth.oidc.default_role")
        self.refused({"auth": {"oidc": {**BASE, "client_id": ""}}}, "auth.oidc.client_id")
        self.refused({"auth": {"oidc": "on"}}, "[auth.oidc] must be a table")

    def test_beside_ldap(self):
        """[auth.oidc] and [auth.ldap] are one [auth] table: both are read, neither is an unknown key."""
        ldap = {"url": "ldaps://dir.example", "user_base": "ou=people,dc=example", "group_base": "ou=groups,dc=example"}
        config = parse_config({"auth": {"oidc": BASE, "ldap": ldap}})
        self.assertEqual(config.oidc.client_id, "harbor")
        self.assertTrue(config.ldap.url.startswith("ldaps://dir.example"))
