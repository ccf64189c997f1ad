"""Tests for L{harbor_cache.upstream.challenge}."""

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.upstream.challenge import parse_www_authenticate


class ParseChallengeTests(SynchronousTestCase):
    def test_docker_hub(self):
        """Docker Hub's bearer challenge gives realm, service and scope."""
        value = (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            'scope="repository:library/nginx:pull"'
        )
        self.assertEqual(
            parse_www_authenticate(value),
            (
                "bearer",
                {
                    "realm": "https://auth.docker.io/token",
                    "service": "registry.docker.io",
                    "scope": "repository:library/nginx:pull",
                },
            ),
        )

    def test_basic(self):
        """A Basic challenge gives scheme 'basic' and its realm."""
        self.assertEqual(parse_www_authenticate('Basic realm="Registry"'), ("basic", {"realm": "Registry"}))

    def test_scheme_lowercased(self):
        """The scheme is lowercased."""
        self.assertEqual(parse_www_authenticate("BEARER realm=x")[0], "bearer")

    def test_param_names_lowercased(self):
        """Parameter names are lowercased; values keep their case."""
        self.assertEqual(parse_www_authenticate('Bearer Realm="Ab"')[1], {"realm": "Ab"})

    def test_comma_inside_quotes(self):
        """Commas inside a quoted value stay in the value."""
        _, params = parse_www_authenticate('Bearer realm="r",scope="repository:a:pull,push"')
        self.assertEqual(params["scope"], "repository:a:pull,push")

    def test_escaped_quote(self):
        """Backslash-escaped quotes and backslashes are unescaped."""
        _, params = parse_www_authenticate(r'Bearer realm="a\"b\\c",service="s"')
        self.assertEqual(params, {"realm": 'a"b\\c', "service": "s"})

    def test_error_param(self):
        """The error parameter of an insufficient_scope challenge is returned."""
        _, params = parse_www_authenticate('Bearer realm="r", error="insufficient_scope", scope="x"')
        self.assertEqual(params["error"], "insufficient_scope")

    def test_spaces_around(self):
        """Whitespace around separators and '=' is tolerated."""
        self.assertEqual(
            parse_www_authenticate('  Bearer   realm = "r" ,  service=s  '),
            ("bearer", {"realm": "r", "service": "s"}),
        )

    def test_unquoted_values(self):
        """Token values without quotes are read up to the next comma."""
        self.assertEqual(parse_www_authenticate("Bearer realm=r,service=s"), ("bearer", {"realm": "r", "service": "s"}))

    def test_empty_quoted(self):
        """An empty quoted value is an empty string."""
        self.assertEqual(parse_www_authenticate('Bearer realm=""')[1], {"realm": ""})

    def test_scheme_only(self):
        """A scheme without parameters gives an empty dict."""
        self.assertEqual(parse_www_authenticate("Bearer"), ("bearer", {}))

    def test_empty(self):
        """An empty value gives an empty scheme and no parameters."""
        self.assertEqual(parse_www_authenticate(""), ("", {}))

    def test_second_challenge_ignored(self):
        """Only the first challenge of a combined value is returned."""
        self.assertEqual(
            parse_www_authenticate('Bearer realm="r", Basic realm="b"'),
            ("bearer", {"realm": "r"}),
        )

    def test_unterminated_quote(self):
        """An unterminated quoted value takes the rest of the header, no error."""
        self.assertEqual(parse_www_authenticate('Bearer realm="abc'), ("bearer", {"realm": "abc"}))

    def test_first_duplicate_wins(self):
        """A repeated parameter keeps its first value."""
        self.assertEqual(parse_www_authenticate("Bearer realm=a,realm=b")[1], {"realm": "a"})

    def test_garbage_does_not_raise(self):
        """Garbled values never raise."""
        for value in ["=", '"', "Bearer =x", 'Bearer "x"', "Bearer ,,,", "Bearer realm=", "Bearer a=b=c"]:
            scheme, params = parse_www_authenticate(value)
            self.assertIsInstance(params, dict)

    def test_bytes_value(self):
        """A bytes header value is decoded."""
        self.assertEqual(parse_www_authenticate(b'Basic realm="x"'), ("basic", {"realm": "x"}))
