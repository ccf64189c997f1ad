"""Optional dependencies: a missing one is one clear line at start-up, never a traceback.

A feature that needs a package not every install has (the PostgreSQL
driver for ``[index] url``) calls `require` while the configuration is read,
so the start stops before anything is built, with a message that says which
setting wants what and how to install it.  The twistd plugin prints a
`MissingDependency`, like a ``ConfigError``, as one line and exits non-zero.
"""

from __future__ import annotations

import importlib


class MissingDependency(ValueError):
    """A setting needs a package that is not installed; the message names the setting and the fix."""


def require(module: str, *, needed_by: str, extra: str) -> None:
    """Import ``module`` or raise `MissingDependency`: "<needed_by> but <module> is not installed: pip install ...".

    ``needed_by`` says which setting asks for it (e.g. "`[index] url` is
    PostgreSQL"); ``extra`` is the setup.py extra that installs it.  Any
    ImportError counts (a broken install as much as a missing one).
    """
    try:
        importlib.import_module(module)
    except ImportError:
        raise MissingDependency(
            f"{needed_by} but {module} is not installed: pip install 'harbor-cache[{extra}]'"
        ) from None
