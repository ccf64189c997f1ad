"""Configuration precedence: defaults < TOML file < command-line options."""

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.settings.startup import DOCKER_HUB_URL, ConfigError, load_config, parse_config


class ConfigTests(SynchronousTestCase):
    def write(self, text):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_defaults_without_file(self):
        """No file at all: tcp:5001, ./data, Docker Hub with library/ expansion, Maven Central."""
        c = load_config(environ={})
        self.assertEqual((c.listen, c.data_dir), ("tcp:5001", "./data"))
        self.assertEqual(c.upstreams[0].url, DOCKER_HUB_URL)
        self.assertTrue(c.upstreams[0].library_prefix)
        self.assertEqual(c.maven_repositories[0].id, "central")

    def test_file_overrides_defaults_and_options_override_file(self):
        """Options beat the file, which beats the defaults."""
        path = self.write('[server]\nlisten = "tcp:7000"\ndata_dir = "/tmp/x"\n')
        c = load_config(path, environ={})
        self.assertEqual((c.listen, c.data_dir), ("tcp:7000", "/tmp/x"))
        c = load_config(path, listen="tcp:7001", data_dir="/tmp/y", environ={})
        self.assertEqual((c.listen, c.data_dir), ("tcp:7001", "/tmp/y"))

    def test_environment_names_the_file(self):
        """$HARBOR_CACHE_CONFIG is used when no --config is given."""
        path = self.write('[server]\nlisten = "tcp:7002"\n')
        self.assertEqual(load_config(environ={"HARBOR_CACHE_CONFIG": path}).listen, "tcp:7002")

    def test_upstreams_and_repositories(self):
        """Upstreams and Maven repositories are read with their options."""
        c = parse_config(
            {
                "upstreams": [
                    {
                        "name": "a",
                        "url": "http://127.0.0.1:5000/",
                        "routes": ["team/*"],
                        "priority": 2,
                        "username": "u",
                        "password": "p",
                    }
                ],
                "maven": {"repositories": [{"id": "r", "url": "http://127.0.0.1:8082", "private": True}]},
            }
        )
        u = c.upstreams[0]
        self.assertEqual(
            (u.url, u.routes, u.priority, u.username, u.library_prefix),
            ("http://127.0.0.1:5000", ("team/*",), 2, "u", False),
        )
        self.assertEqual(
            (c.maven_repositories[0].url, c.maven_repositories[0].private), ("http://127.0.0.1:8082/", True)
        )

    def test_bad_values_are_named(self):
        """A wrong type or missing key is refused with the key in the message."""
        for doc, where in (
            ({"server": {"listen": 5}}, "server.listen"),
            ({"upstreams": [{"name": "x"}]}, "upstreams[0].url"),
            ({"maven": {"repositories": [{"id": "../x", "url": "http://a"}]}}, "maven.repositories[0].id"),
            ({"upstreams": [{"name": "a", "url": "http://a"}, {"name": "a", "url": "http://b"}]}, "unique"),
        ):
            e = self.assertRaises(ConfigError, parse_config, doc)
            self.assertIn(where, str(e))

    def test_unreadable_file(self):
        """A missing or broken file is a ConfigError, not a traceback."""
        self.assertRaises(ConfigError, load_config, "/nonexistent/harbor.toml", environ={})
        self.assertRaises(ConfigError, load_config, self.write("[server\n"), environ={})

    def test_unknown_keys_fail_with_their_path(self):
        """A key or section nobody reads stops the start, named by its full path."""
        for doc, path in (
            ({"index": {"uri": "x"}}, "index.uri"),
            ({"indexes": {"url": "x"}}, "indexes"),
            ({"server": {"listen": "tcp:1", "listn": "tcp:2"}}, "server.listn"),
            (
                {
                    "upstreams": [
                        {"name": "a", "url": "http://a"},
                        {"name": "b", "url": "http://b", "strip_prefix": "x"},
                    ]
                },
                "upstreams[1].strip_prefix",
            ),
            (
                {"maven": {"repositories": [{"id": "r", "url": "http://a", "privat": True}]}},
                "maven.repositories[0].privat",
            ),
            ({"maven": {"mirrors": []}}, "maven.mirrors"),
        ):
            e = self.assertRaises(ConfigError, parse_config, doc)
            self.assertIn(f"{path}: unknown key", str(e))

    def test_every_documented_key_is_accepted(self):
        """The schema knows every key the parser reads (a full file parses)."""
        path = self.write(
            '[server]\nlisten = "tcp:1"\npublic_url = "http://h"\ndata_dir = "/tmp/d"\n'
            "eviction_interval_seconds = 1\naccess_flush_seconds = 1\nupstream_connect_timeout = 1\n"
            "upstream_idle_timeout = 1\nartifact_token_max_hours = 1\n"
            '[[upstreams]]\nname = "a"\nurl = "http://a"\nroutes = ["*"]\npriority = 1\nusername = "u"\n'
            'password = "p"\nlibrary_prefix = false\nallow_push = true\n'
            '[[upstreams]]\nname = "q"\nurl = "http://q"\nregistry = "quay.io"\nprefix = "quay"\n'
            '[[maven.repositories]]\nid = "r"\nurl = "http://a"\nprivate = true\nusername = "u"\n'
            'password = "p"\n'
            '[index]\nurl = "postgresql://u:p@db/harbor"\npool_size = 4\n'
        )
        config = load_config(path, environ={})
        self.assertEqual(
            (config.listen, config.index_url, config.index_pool_size), ("tcp:1", "postgresql://u:p@db/harbor", 4)
        )

    def test_index_section(self):
        """[index] url picks PostgreSQL; no url keeps sqlite; bad values are named."""
        self.assertIsNone(parse_config({}).index_url)
        self.assertEqual(parse_config({"index": {"url": "postgres://h/db"}}).index_url, "postgres://h/db")
        for doc, where in (
            ({"index": {"url": "mysql://h/db"}}, "index.url"),
            ({"index": {"pool_size": 0}}, "index.pool_size"),
            ({"index": {"pool_size": "4"}}, "index.pool_size"),
            ({"index": "x"}, "[index]"),
        ):
            e = self.assertRaises(ConfigError, parse_config, doc)
            self.assertIn(where, str(e))

    def test_file_with_unknown_key_is_refused_by_load(self):
        """load_config names the key of a file, too."""
        path = self.write('[server]\nlisten = "tcp:1"\n[index]\nuri = "postgres://x"\n')
        e = self.assertRaises(ConfigError, load_config, path, environ={})
        self.assertIn("index.uri: unknown key", str(e))
