"""The test OpenID provider (tests/oidc_provider.py) as a subprocess on 127.0.0.1, for integration tests.

`OpenIDProvider` starts it on a free port with one registered client whose
redirect URI is harbor-cache's callback, and waits until its discovery
document answers (well under a second).  A module shares one (setUpModule /
tearDownModule); `oidc_config` is the ``[auth.oidc]`` table that points a
harbor-cache at it.
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any

from tests.integration.support import _Daemon, _Peer, free_port

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENT_ID = "harbor-cache-it"
CLIENT_SECRET = "op-client-secret-not-for-logs"
PASSWORDS = {"alice": "alice-op-pw", "bob": "bob-op-pw"}


class OpenIDProvider(_Peer):
    """tests/oidc_provider.py on 127.0.0.1:<port>; ``issuer`` is its URL."""

    def __init__(self, redirect_uri: str, port: int | None = None, start: bool = True) -> None:
        self.port = port or free_port()
        self.issuer = "http://127.0.0.1:%d" % self.port
        self.redirect_uri = redirect_uri
        self.dir = tempfile.mkdtemp(prefix="harbor-it-op-")
        self.log_path = os.path.join(self.dir, "op.log")
        self._launch(_Daemon("oidc provider :%d" % self.port, self.log_path), start)

    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        cmd = [sys.executable, "-m", "tests.oidc_provider", "--port", str(self.port), "--client-id", CLIENT_ID,
               "--client-secret", CLIENT_SECRET, "--redirect-uri", self.redirect_uri]  # fmt: skip
        self._daemon.start(cmd, env=env, cwd=REPO_ROOT)
        self._daemon.wait_ready(self.issuer + "/.well-known/openid-configuration", 20)


def oidc_config(issuer: str, **extra: str) -> str:
    """The ``[auth.oidc]`` TOML for a provider at ``issuer`` (group devs -> read-write)."""
    lines = [
        "[auth.oidc]",
        'issuer = "%s"' % issuer,
        'client_id = "%s"' % CLIENT_ID,
        'client_secret = "%s"' % CLIENT_SECRET,
        'display_name = "Test OP"',
    ]
    lines += ['%s = "%s"' % kv for kv in extra.items()]
    lines += ["[auth.oidc.group_roles]", 'devs = "read-write"']
    return "\n".join(lines) + "\n"


_SHARED: dict[str, Any] = {}


def shared_server_and_provider() -> tuple[Any, OpenIDProvider]:
    """One harbor-cache with ``[auth.oidc]`` and its provider for the whole test module (trial has no
    setUpModule: made at the first call, both closed when the test process exits)."""
    if "server" not in _SHARED:
        from tests.integration.support import HarborServer

        op_port = free_port()
        server = HarborServer(oidc_config("http://127.0.0.1:%d" % op_port), start=False)
        try:
            op = OpenIDProvider(server.url + "/api/v1/auth/oidc/callback", port=op_port)
            server.start()
        except BaseException:
            server.close()
            raise
        _SHARED.update(server=server, op=op)
    return _SHARED["server"], _SHARED["op"]
