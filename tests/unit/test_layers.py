"""The layer rules of docs/architecture.md ("The rules:"), checked on every module's imports.

Each module of ``harbor_cache`` is parsed (not imported) and every import it
makes is collected: at the top, inside functions, under ``if TYPE_CHECKING:``
and in ``try:`` blocks alike.  A ``TYPE_CHECKING`` import counts like any
other: it is how a module names a type in its signatures, so a front that
imported ``Index`` only for annotations would still be written against the
index's class instead of the core's seam, and the next refactor would turn
the annotation into a call.  ``from pkg import name`` is read as an import of
``pkg`` and of ``pkg.name`` (``name`` may be a submodule).

The rules are data: `RULES` lists, for each layer (a package prefix, so the
rules hold however a package is split into sub-packages or modules), the
prefixes it may not import and the doc's reason.  `service.py` (the wiring),
`process.py`, `testing.py` and the package root are outside every layer.

`grammar/` is also checked at run time: importing every grammar module in a
fresh interpreter must not load Twisted, so a third-party import that pulls it
in is caught too (this was tests/test_grammar_purity.py).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from twisted.trial import unittest

import harbor_cache
import harbor_cache.grammar

PACKAGE_DIR = Path(harbor_cache.__file__).parent
SOURCE_ROOT = PACKAGE_DIR.parent
GRAMMAR_DIR = os.path.dirname(harbor_cache.grammar.__file__)

FRONTS = ("harbor_cache.oci", "harbor_cache.maven", "harbor_cache.api")
SHELL = ("harbor_cache.http",)
CORE = ("harbor_cache.core",)
IO = ("harbor_cache.storage", "harbor_cache.index", "harbor_cache.upstream")
#: the layers proper: what the modules "beside all of them" may not import
LAYERS = SHELL + FRONTS + CORE + IO
TWISTED = ("twisted", "klein", "treq")


@dataclass(frozen=True)
class Rule:
    layer: str  # package prefix the rule applies to
    forbidden: tuple[str, ...]  # import prefixes the layer may not use
    why: str
    allowed: tuple[str, ...] = ()  # exceptions inside `forbidden`


def _others(own: str, group: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(p for p in group if p != own)


RULES: tuple[Rule, ...] = (
    # The shell: fronts import http/ (json_response, serving); service.py mounts the fronts' resources in it.
    Rule("harbor_cache.http", FRONTS + CORE + ("harbor_cache.index", "harbor_cache.upstream"),
         "http/ is the shell: it speaks HTTP and is handed the fronts; it knows no front, core, index or upstream"),
    *(
        Rule(front, ("harbor_cache.index",),
             "a front reaches the index only through the core: its Protocols and rows are in core/seams.py")
        for front in FRONTS
    ),
    *(Rule(front, _others(front, FRONTS), "the fronts do not import each other") for front in FRONTS),
    Rule("harbor_cache.core", FRONTS + SHELL, "the core imports no front and not the http shell"),
    *(
        Rule(io, FRONTS + SHELL + CORE + _others(io, IO),
             "storage/, index/ and upstream/ import no front, no shell, no core, and not each other")
        for io in IO
    ),
    Rule("harbor_cache.grammar", TWISTED + ("harbor_cache",),
         "grammar/ is pure: no Twisted and nothing of harbor_cache outside grammar/",
         allowed=("harbor_cache.grammar",)),
    Rule("harbor_cache.settings", LAYERS + ("harbor_cache.auth", "harbor_cache.metrics"),
         "settings/ imports no layer (only grammar/, errors.py and its own modules)"),
    Rule("harbor_cache.auth", LAYERS + ("harbor_cache.metrics",), "auth/ imports no layer"),
    Rule("harbor_cache.errors", ("harbor_cache",), "errors.py imports nothing of harbor_cache"),
    Rule("harbor_cache.metrics", ("harbor_cache",), "metrics.py imports nothing of harbor_cache"),
    Rule("harbor_cache.limited_body", ("harbor_cache",), "limited_body.py imports nothing of harbor_cache"),
)  # fmt: skip


def under(name: str, prefix: str) -> bool:
    """``name`` is ``prefix`` or inside it (dotted components, so ``core`` is not under ``co``)."""
    return name == prefix or name.startswith(prefix + ".")


def imported_names(module: str, source: str, is_package: bool = False) -> list[tuple[str, int]]:
    """Every (imported module name, line) in ``source``, wherever the import statement stands."""
    out: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            out.append((base, node.lineno))
            out += [(f"{base}.{alias.name}", node.lineno) for alias in node.names if alias.name != "*"]
    return out


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    """``module:line -> import (why)`` for each import a rule forbids to ``module``."""
    found: list[str] = []
    for rule in RULES:
        if not under(module, rule.layer):
            continue
        seen = set()
        for name, line in imported_names(module, source, is_package):
            bad = any(under(name, p) for p in rule.forbidden) and not any(under(name, p) for p in rule.allowed)
            # `from harbor_cache.index import rows` yields both names; report the statement once
            if bad and line not in seen:
                seen.add(line)
                found.append(f"{module}:{line} -> {name}  ({rule.why})")
    return found


def all_modules() -> list[tuple[str, Path]]:
    modules = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(SOURCE_ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules.append((".".join(parts), path))
    return modules


class LayerRulesTests(unittest.TestCase):
    def test_no_module_imports_what_its_layer_may_not(self):
        modules = all_modules()
        self.assertGreater(len(modules), 50)
        found: list[str] = []
        for module, path in modules:
            found += violations(module, path.read_text(encoding="utf-8"), path.name == "__init__.py")
        self.assertEqual(found, [], "imports against docs/architecture.md's rules:\n" + "\n".join(found))

    def test_every_layer_of_a_rule_exists(self):
        """A rule on a package that was renamed away would pass forever: each must name real modules."""
        names = [m for m, _ in all_modules()]
        for rule in RULES:
            self.assertTrue(any(under(m, rule.layer) for m in names), rule.layer)

    def test_a_front_may_not_name_the_index_even_for_types(self):
        source = (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n"
            "    from harbor_cache.index import Index\n"
            "from harbor_cache.core.seams import ConsoleQueries\n"
        )
        found = violations("harbor_cache.api.console", source)
        self.assertEqual(len(found), 1)
        self.assertIn("harbor_cache.api.console:3 -> harbor_cache.index", found[0])

    def test_imports_inside_functions_and_relative_ones_count(self):
        source = "def f():\n    from ...oci import front\n    import harbor_cache.http.site\n"
        found = [f.split("  (")[0] for f in violations("harbor_cache.core.sub.mod", source)]
        self.assertEqual(
            found,
            [
                "harbor_cache.core.sub.mod:2 -> harbor_cache.oci",
                "harbor_cache.core.sub.mod:3 -> harbor_cache.http.site",
            ],
        )
        # one level up from a sub-package stays in the core: allowed
        self.assertEqual(violations("harbor_cache.core.sub.mod", "from ..oci import OciCache\n"), [])
        found = [
            f.split("  (")[0]
            for f in violations("harbor_cache.storage", "from . import layout\nfrom .. import oci\n", True)
        ]
        self.assertEqual(found, ["harbor_cache.storage:2 -> harbor_cache.oci"])

    def test_prefixes_match_whole_components(self):
        self.assertTrue(under("harbor_cache.core.caches.oci", "harbor_cache.core"))
        self.assertFalse(under("harbor_cache.corelike", "harbor_cache.core"))
        self.assertEqual(violations("harbor_cache.grammar.x", "import harbor_cache.grammar.digests\n"), [])
        self.assertEqual(len(violations("harbor_cache.grammar.x", "from harbor_cache import errors\n")), 1)
        self.assertEqual(len(violations("harbor_cache.grammar.x", "from twisted.internet import defer\n")), 1)


class GrammarPurityTests(unittest.TestCase):
    """The pure grammars (digests, names, ranges, Maven paths, media types, ...) import no Twisted,
    so they can be read, tested and reused without a reactor."""

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
        env = dict(os.environ, PYTHONPATH=str(SOURCE_ROOT))
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
        self.assertEqual(out.stdout.strip(), "", "a grammar module pulled in Twisted")


#: docs/architecture.md: "Small modules (none over 600 lines)"
MAX_MODULE_LINES = 600


class ModuleSizeTests(unittest.TestCase):
    """No module of harbor_cache grows past MAX_MODULE_LINES: a module that does is doing two things."""

    def test_no_module_over_the_limit(self):
        sizes = {
            str(path.relative_to(SOURCE_ROOT)): len(path.read_text(encoding="utf-8").splitlines())
            for path in PACKAGE_DIR.rglob("*.py")
        }
        self.assertGreater(len(sizes), 50)
        over = {name: lines for name, lines in sorted(sizes.items()) if lines > MAX_MODULE_LINES}
        self.assertEqual(over, {}, f"modules over {MAX_MODULE_LINES} lines")
