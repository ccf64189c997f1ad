"""The README's settings table against the settings the code knows, so the two cannot drift apart."""

from __future__ import annotations

import os
import re

from twisted.trial import unittest

from harbor_cache.settings.runtime import SETTINGS

README = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))), "README.md"
)
TABLE_INTRO = "Settings that change at run time"
ROW = re.compile(r"^\| `([a-z_.]+)` \| ([^|]*) \|")


def runtime_table(text: str) -> dict[str, str]:
    """Key -> default as the README's runtime settings table shows them (backticks dropped, "(empty)" as "")."""
    start = text.index(TABLE_INTRO)
    rows: dict[str, str] = {}
    in_table = False
    for line in text[start:].splitlines():
        if line.startswith("|"):
            in_table = True
            match = ROW.match(line)
            if match:
                default = match.group(2).strip().strip("`")
                rows[match.group(1)] = "" if default == "(empty)" else default
        elif in_table:
            break
    return rows


class ReadmeSettingsTableTests(unittest.TestCase):
    def setUp(self):
        with open(README, encoding="utf-8") as f:
            self.table = runtime_table(f.read())

    def test_every_runtime_key_is_in_the_table(self):
        """Each key of settings.runtime.SETTINGS has a row (a key added without one fails here)."""
        self.assertEqual(sorted(set(SETTINGS) - set(self.table)), [])

    def test_no_row_names_an_unknown_key(self):
        """Every row of the table is a runtime key (a renamed or removed key fails here)."""
        self.assertEqual(sorted(set(self.table) - set(SETTINGS)), [])

    def test_defaults_match(self):
        """The default a row shows is the code's default."""
        self.assertEqual(
            {k: v for k, v in self.table.items() if k in SETTINGS and v != SETTINGS[k].default},
            {},
        )
