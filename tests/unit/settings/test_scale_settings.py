"""[index] sqlite_readers, sqlite_writer_cache_mib and [server] reactor_lag_probe (issue 30 point 2): defaults, values, bad input named."""

from __future__ import annotations

import os

from twisted.internet.task import Clock
from twisted.trial import unittest

from harbor_cache.daemon import make_service
from harbor_cache.settings.startup import Config, ConfigError, parse_config


class ScaleSettingsTests(unittest.TestCase):
    def test_defaults(self):
        config = parse_config({})
        self.assertEqual((config.index_sqlite_readers, config.reactor_lag_probe), (4, False))
        self.assertEqual(config.index_sqlite_writer_cache_mib, 256)

    def test_values(self):
        config = parse_config(
            {"index": {"sqlite_readers": 8, "sqlite_writer_cache_mib": 16}, "server": {"reactor_lag_probe": True}}
        )
        self.assertEqual((config.index_sqlite_readers, config.reactor_lag_probe), (8, True))
        self.assertEqual(config.index_sqlite_writer_cache_mib, 16)

    def test_bad_values_are_named(self):
        for doc, where in (
            ({"index": {"sqlite_readers": 0}}, "index.sqlite_readers: must be between 1 and 64"),
            ({"index": {"sqlite_readers": 65}}, "index.sqlite_readers: must be between 1 and 64"),
            ({"index": {"sqlite_readers": "4"}}, "index.sqlite_readers: expected int"),
            ({"server": {"reactor_lag_probe": "yes"}}, "server.reactor_lag_probe: expected bool"),
            ({"index": {"sqlite_writer_cache_mib": 1}}, "index.sqlite_writer_cache_mib: must be between 2 and 65536"),
        ):
            e = self.assertRaises(ConfigError, parse_config, doc)
            self.assertIn(where, str(e))

    def test_the_probe_runs_only_when_asked(self):
        """make_service adds the probe's service under the start-up state only with reactor_lag_probe."""
        for wanted in (False, True):
            config = Config(data_dir=os.path.abspath(self.mktemp()), upstreams=(), reactor_lag_probe=wanted)
            top = make_service(config, Clock())
            for pool in (top.harbor.db_pool, top.harbor.read_pool, top.harbor.ping_pool):
                self.addCleanup(pool.close)
            state = [s for s in top if hasattr(s, "app")][0]
            names = {s.name for s in state}
            self.assertEqual("reactor-lag-probe" in names, wanted)

    def test_the_writer_gets_the_configured_page_cache(self):
        """[index] sqlite_writer_cache_mib reaches the service's one sqlite writer connection."""
        config = Config(data_dir=os.path.abspath(self.mktemp()), upstreams=(), index_sqlite_writer_cache_mib=16)
        top = make_service(config, Clock())
        for pool in (top.harbor.db_pool, top.harbor.read_pool, top.harbor.ping_pool):
            self.addCleanup(pool.close)
        import sqlite3

        conn = sqlite3.connect(":memory:")
        self.addCleanup(conn.close)
        top.harbor.db_pool.openfun(conn)
        self.assertEqual(conn.execute("PRAGMA cache_size").fetchone()[0], -16 * 1024)
