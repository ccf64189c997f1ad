"""``[auth.ldap]``: the keys, their defaults, and every contradiction stopping the start by name."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.settings.ldap import LdapConfig
from harbor_cache.settings.startup import ConfigError, parse_config

MINIMAL = {
    "url": "ldap://dir.example:389",
    "bind_dn": "cn=svc,dc=example,dc=org",
    "bind_password": "s3cret-bind",
    "user_base": "ou=people,dc=example,dc=org",
    "group_base": "ou=groups,dc=example,dc=org",
}


def ldap(**changes) -> dict:
    table = {**MINIMAL, **changes}
    return {"auth": {"ldap": {k: v for k, v in table.items() if v is not None}}}


class LdapConfigTests(SynchronousTestCase):
    def test_off_without_the_table(self):
        """No [auth.ldap]: LDAP is off (today's behaviour)."""
        self.assertIsNone(parse_config({}).ldap)
        self.assertIsNone(parse_config({"auth": {}}).ldap)

    def test_defaults(self):
        """StartTLS on by default for ldap://, the documented filters, 5 s, search membership."""
        config = parse_config(ldap()).ldap
        assert config is not None
        self.assertEqual((config.host, config.port, config.ldaps, config.start_tls), ("dir.example", 389, False, True))
        self.assertEqual((config.user_filter, config.group_filter), ("(uid={username})", "(member={dn})"))
        self.assertEqual((config.timeout_seconds, config.group_membership, config.ca_file), (5.0, "search", None))
        ldaps = parse_config(ldap(url="ldaps://dir.example")).ldap
        assert ldaps is not None
        self.assertEqual((ldaps.port, ldaps.ldaps, ldaps.start_tls), (636, True, False))

    def test_group_roles(self):
        """cn -> role or group:<name>, in file order."""
        config = parse_config(ldap(group_roles={"devs": "read-write", "team-a": "group:team-a"})).ldap
        assert config is not None
        self.assertEqual(config.group_roles, (("devs", "read-write"), ("team-a", "group:team-a")))

    def test_bind_password_is_never_shown(self):
        """Neither the repr of the LDAP table nor of the whole Config holds the bind password, nor an error."""
        config = parse_config(ldap())
        self.assertNotIn("s3cret-bind", repr(config))
        self.assertNotIn("s3cret-bind", repr(config.ldap))
        e = self.assertRaises(ConfigError, parse_config, ldap(bind_password=12345678))
        self.assertNotIn("12345678", str(e))

    def test_unknown_key_is_named(self):
        e = self.assertRaises(ConfigError, parse_config, ldap(user_filtr="(uid={username})"))
        self.assertIn("auth.ldap.user_filtr: unknown key", str(e))
        e = self.assertRaises(ConfigError, parse_config, {"auth": {"ldapp": {}}})
        self.assertIn("auth.ldapp: unknown key", str(e))

    def test_bad_and_contradictory_values_are_named(self):
        ca = os.path.abspath(__file__)
        for doc, where in (
            (ldap(url=None), "auth.ldap.url is required"),
            (ldap(url="http://dir.example"), "auth.ldap.url"),
            (ldap(url="ldap://u:p@dir.example"), "auth.ldap.url"),
            (ldap(url="ldap://dir.example/dc=x"), "auth.ldap.url"),
            (ldap(url="ldaps://dir.example", start_tls=True), "auth.ldap.start_tls"),
            (ldap(bind_password=None), "auth.ldap.bind_password is required"),
            (ldap(bind_dn=None), "auth.ldap.bind_dn is required"),
            (ldap(bind_password=""), "auth.ldap.bind_password"),
            (ldap(user_base=None), "auth.ldap.user_base is required"),
            (ldap(group_base=None), "auth.ldap.group_base is required"),
            (ldap(user_filter="(uid=alice)"), "auth.ldap.user_filter: must contain {username}"),
            (ldap(user_filter="uid={username}"), "auth.ldap.user_filter"),
            (ldap(group_membership="memberOf"), "auth.ldap.group_base: not used"),
            (
                ldap(group_membership="memberOf", group_base=None, group_filter="(member={dn})"),
                "auth.ldap.group_filter",
            ),
            (ldap(group_membership="nested"), "auth.ldap.group_membership"),
            (ldap(ca_file="/nonexistent/ca.pem"), "auth.ldap.ca_file: no such file"),
            (ldap(ca_file=ca, start_tls=False), "auth.ldap.ca_file: no TLS"),
            (ldap(timeout_seconds=0), "auth.ldap.timeout_seconds"),
            (ldap(timeout_seconds="5"), "auth.ldap.timeout_seconds"),
            (ldap(start_tls="yes"), "auth.ldap.start_tls"),
            (ldap(group_roles={"devs": "write"}), "auth.ldap.group_roles.devs"),
            (ldap(group_roles={"devs": "group:"}), "auth.ldap.group_roles.devs"),
            (ldap(group_roles={"devs": "group:a b"}), "auth.ldap.group_roles.devs"),
            (ldap(group_roles="devs"), "auth.ldap.group_roles"),
            ({"auth": {"ldap": "x"}}, "[auth.ldap]"),
        ):
            e = self.assertRaises(ConfigError, parse_config, doc)
            self.assertIn(where, str(e), doc)

    def test_memberof_needs_no_group_base(self):
        config = parse_config(ldap(group_membership="memberOf", group_base=None)).ldap
        assert config is not None
        self.assertEqual((config.group_membership, config.group_base), ("memberOf", None))

    def test_anonymous_search_and_plain_ldap(self):
        """Neither bind_dn nor bind_password: anonymous service search; start_tls = false is plain LDAP."""
        config = parse_config(ldap(bind_dn=None, bind_password=None, start_tls=False)).ldap
        self.assertEqual(
            config, LdapConfig(host="dir.example", port=389, ldaps=False, start_tls=False, user_base=MINIMAL["user_base"],
                               group_base=MINIMAL["group_base"])
        )  # fmt: skip
