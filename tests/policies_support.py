"""A hosted registry (`tests.hosted_support.Registry`) with the management API beside it, for the policy tests."""

from __future__ import annotations

import json
from typing import Any

from treq.testing import StubTreq

from tests.hosted_support import PUBLIC_URL, Registry


class PolicyRegistry(Registry):
    """`Registry` plus ``api``: /api/v1 requests as the admin (a token from a real login)."""

    def __init__(self, case: Any) -> None:
        super().__init__(case)
        self.audit = self.app.audit
        self.retention = self.app.retention
        self.api_treq = StubTreq(self.app.api_front.app.resource())

    def login(self) -> str:
        """A fresh admin token (tests move the clock by days, past a token's lifetime)."""
        code, body = self.api("POST", "/api/v1/auth/login", {"username": "admin", "password": "admin-pw"}, token=None)
        self.case.assertEqual(code, 200, body)
        return str(body["token"])

    def api(self, method: str, path: str, body: Any = None, token: str | None = "admin") -> tuple[int, Any]:
        """(status, parsed JSON body or None)."""
        headers = {}
        if token is not None:
            headers[b"Authorization"] = [b"Bearer " + (self.login() if token == "admin" else token).encode()]
        kw: dict[str, Any] = {"headers": headers}
        if body is not None:
            kw["data"] = body if isinstance(body, bytes) else json.dumps(body).encode()
        d = self.api_treq.request(method, PUBLIC_URL + path, **kw)
        self.api_treq.flush()
        response = self.case.successResultOf(d)
        content = self.api_treq.content(response)
        self.api_treq.flush()
        raw = self.case.successResultOf(content)
        return response.code, (json.loads(raw) if raw else None)

    def audit_actions(self) -> list[tuple[str, str | None]]:
        """(action, target) of every audit record, oldest first."""
        from twisted.internet.defer import Deferred

        _, rows = self.case.successResultOf(Deferred.fromCoroutine(self.index.audit_page(limit=1000, offset=0)))
        return [(r.action, r.target) for r in reversed(rows)]
