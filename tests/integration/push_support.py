"""Shared by the push and conformance integration tests: a harbor-cache that accepts pushes, and its users."""

import base64
import json
import os
import sqlite3
import time
import urllib.parse

import bcrypt

from tests.integration import support

WRITER = ("pusher", "pusher-password")
READER = ("looker", "looker-password")


def hosted_server(case):
    """A HarborServer whose only upstream routes ``proxied/*`` (pushed repositories never go upstream)."""
    config = support.oci_config("http://127.0.0.1:9", routes=["proxied/*"])
    server = support.HarborServer(config)
    case.addCleanup(server.close)
    ensure_user(server, *WRITER, "read-write")
    ensure_user(server, *READER, "read-only")
    return server


def basic_header(username, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def admin_basic(server):
    return basic_header("admin", server.admin_password)


def management_api_available(server):
    status, _, _ = support.http(
        "POST", server.url + "/api/v1/auth/login", body={"username": "admin", "password": server.admin_password}
    )
    return status == 200


def ensure_user(server, username, password, role):
    """Create a user through /api/v1/users, or straight in the index while the management API is not there."""
    if management_api_available(server):
        token = server.login()
        status, _, body = support.http(
            "POST",
            server.url + "/api/v1/users",
            headers={"Authorization": "Bearer " + token},
            body={"username": username, "password": password, "role": role},
        )
        if status in (200, 201):
            return
        if status != 409:
            raise AssertionError("creating %s: %d %r" % (username, status, body[:300]))
        return
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    conn = sqlite3.connect(os.path.join(server.data_dir, "index.sqlite"), timeout=30)
    try:
        now = time.time()
        conn.execute(
            "INSERT OR IGNORE INTO users (username, password_hash, role, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (username, hashed, role, now, now),
        )
        conn.commit()
    finally:
        conn.close()


def entry_kinds(server):
    """{(type, repository, key): kind} of every entry in the server's index (read-only peek)."""
    conn = sqlite3.connect("file:%s?mode=ro" % os.path.join(server.data_dir, "index.sqlite"), uri=True, timeout=30)
    try:
        return {(t, r, k): kind for t, r, k, kind in conn.execute("SELECT type, repository, key, kind FROM entries")}
    finally:
        conn.close()


def registry_token(server, username, password, scope):
    query = urllib.parse.urlencode([("service", "harbor-cache")] + [("scope", s) for s in scope.split()])
    status, _, body = support.http("GET", server.url + "/v2/token?" + query, headers=basic_header(username, password))
    if status != 200:
        raise AssertionError("token: %d %r" % (status, body[:300]))
    return json.loads(body)["token"]
