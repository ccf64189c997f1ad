"""LDAP filters from client input (RFC 4515 escaping) and the cn of a memberOf DN."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.grammar.ldap_filters import escape_filter_value, fill_filter, first_rdn_value


class EscapeTests(SynchronousTestCase):
    def test_special_characters_are_hex_escaped(self):
        """The five RFC 4515 specials become \\XX; everything else is kept (UTF-8 included)."""
        self.assertEqual(escape_filter_value("a*b(c)d\\e\0f"), "a\\2ab\\28c\\29d\\5ce\\00f")
        self.assertEqual(escape_filter_value("jörg.o'neil"), "jörg.o'neil")

    def test_injection_stays_one_value(self):
        """A username that tries to add clauses or wildcards stays one literal assertion value."""
        self.assertEqual(fill_filter("(uid={username})", username="*"), "(uid=\\2a)")
        self.assertEqual(fill_filter("(uid={username})", username="x)(|(uid=*)"), "(uid=x\\29\\28|\\28uid=\\2a\\29)")

    def test_placeholders_are_replaced_once(self):
        """{dn} and {username} are filled in one pass; a value holding a placeholder is not expanded again;
        other braces of the template stay."""
        self.assertEqual(
            fill_filter("(&(member={dn})(x={y}))", dn="cn={username}", username="u"), "(&(member=cn={username})(x={y}))"
        )
        self.assertEqual(fill_filter("(member={dn})", dn="uid=a\\,b,ou=p"), "(member=uid=a\\5c,b,ou=p)")


class FirstRdnTests(SynchronousTestCase):
    def test_cn_of_a_group_dn(self):
        self.assertEqual(first_rdn_value("cn=devs,ou=groups,dc=example,dc=org"), "devs")
        self.assertEqual(first_rdn_value("CN=Team A,OU=Groups"), "Team A")
        self.assertEqual(first_rdn_value("cn=a\\,b,ou=g"), "a,b")
        self.assertEqual(first_rdn_value("cn=caf\\c3\\a9,ou=g"), "café")

    def test_other_attributes_are_not_names(self):
        self.assertIsNone(first_rdn_value("uid=devs,ou=groups"))
        self.assertIsNone(first_rdn_value("garbage"))
