"""The base URL for realms: configured, else the request's Host; forwarded headers only from trusted proxies."""

from twisted.internet.address import IPv4Address
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from harbor_cache.grammar.public_url import PublicURL
from harbor_cache.settings.startup import ConfigError, parse_config


def request(host=None, peer="10.0.0.1", **headers):
    r = DummyRequest([b""])
    r.client = IPv4Address("TCP", peer, 40000)
    r.isSecure = lambda: False
    r.getHost = lambda: IPv4Address("TCP", "127.0.0.1", 5001)
    if host is not None:
        r.requestHeaders.setRawHeaders(b"Host", [host.encode()])
    for name, value in headers.items():
        r.requestHeaders.setRawHeaders(name.replace("_", "-").encode(), [value.encode()])
    return r


class PublicUrlTests(SynchronousTestCase):
    def test_configured_wins(self):
        self.assertEqual(PublicURL("https://cache.example/").for_request(request("other:1")), "https://cache.example")

    def test_host_of_the_request(self):
        self.assertEqual(PublicURL().for_request(request("127.0.0.1:8080")), "http://127.0.0.1:8080")
        self.assertEqual(PublicURL().for_request(request("[::1]:8080")), "http://[::1]:8080")

    def test_hostile_host_is_not_echoed(self):
        """A Host that could break out of the challenge header falls back to the connection's address."""
        for bad in ('evil",x="1', "a b", "a,b", "", "x" * 300):
            url = PublicURL().for_request(request(bad))
            self.assertNotIn('"', url)
            self.assertTrue(url.startswith("http://"), url)
            self.assertNotIn(bad or "\0", url)

    def test_forwarded_headers_only_from_trusted_proxies(self):
        headers = {"X_Forwarded_Proto": "https", "X_Forwarded_Host": "cache.example"}
        untrusted = PublicURL(trusted_proxies=["192.168.0.0/16"])
        self.assertEqual(untrusted.for_request(request("127.0.0.1:5001", **headers)), "http://127.0.0.1:5001")
        trusted = PublicURL(trusted_proxies=["10.0.0.0/8"])
        self.assertEqual(trusted.for_request(request("127.0.0.1:5001", **headers)), "https://cache.example")

    def test_config(self):
        """public_url is unset by default; a bad one or a bad proxy address is refused by name."""
        self.assertIsNone(parse_config({}).public_url)
        self.assertEqual(
            parse_config({"server": {"trusted_proxies": ["10.0.0.1", "fd00::/8"]}}).trusted_proxies,
            ("10.0.0.1", "fd00::/8"),
        )
        for server, key in (
            ({"public_url": "ftp://x"}, "server.public_url"),
            ({"public_url": 'http://a"b'}, "server.public_url"),
            ({"trusted_proxies": ["nope"]}, "server.trusted_proxies"),
        ):
            e = self.assertRaises(ConfigError, parse_config, {"server": server})
            self.assertIn(key, str(e))
