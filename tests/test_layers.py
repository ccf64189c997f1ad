"""The pure grammars (digests, names, ranges, Maven paths, media types, ...)
import no Twisted, so they can be read, tested and reused without a reactor."""

import os
import subprocess
import sys

from twisted.trial import unittest

import harbor_cache.grammar

GRAMMAR_DIR = os.path.dirname(harbor_cache.grammar.__file__)
SOURCE_ROOT = os.path.dirname(os.path.dirname(GRAMMAR_DIR))


class GrammarPurityTests(unittest.TestCase):
    def test_grammar_modules_import_no_twisted(self):
        modules = sorted(
            "harbor_cache.grammar." + name[:-3]
            for name in os.listdir(GRAMMAR_DIR)
            if name.endswith(".py") and name != "__init__.py"
        )
        self.assertGreater(len(modules), 5)
        script = (
            "import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "bad = sorted(m for m in sys.modules if m == 'twisted' or m.startswith(('twisted.', 'klein', 'treq')))\n"
            "print(' '.join(bad))\n"
        )
        env = dict(os.environ, PYTHONPATH=SOURCE_ROOT)
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
        self.assertEqual(out.stdout.strip(), "", "a grammar module pulled in Twisted")
