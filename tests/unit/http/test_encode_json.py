"""encode_json: json.dumps' bytes exactly, with a big list encoded a slice at a time (the GIL goes back between)."""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.http import responses
from harbor_cache.http.responses import ENCODE_SLICE, encode_json


class EncodeJsonTests(SynchronousTestCase):
    def test_the_bytes_are_json_dumps(self):
        docs = [
            {},
            [],
            "text",
            7,
            None,
            {"a": [], "b": {"c": [1, 2]}},
            {"repositories": [{"name": f"r{i}", "é": i, "tags": ["x", None]} for i in range(2 * ENCODE_SLICE + 7)]},
            [{"n": i} for i in range(ENCODE_SLICE + 1)],
            {"k": list(range(ENCODE_SLICE)), "n": None},
            {1: "not a str key", "k": list(range(3 * ENCODE_SLICE))},
        ]
        for doc in docs:
            self.assertEqual(encode_json(doc), json.dumps(doc).encode(), doc if len(repr(doc)) < 200 else "big")

    def test_a_long_list_is_encoded_in_slices(self):
        """No single json.dumps call gets more than ENCODE_SLICE items of the big list."""
        calls: list[int] = []
        real = json.dumps

        def dumps(value, *args, **kw):
            calls.append(len(value) if isinstance(value, list) else 0)
            return real(value, *args, **kw)

        self.patch(responses.json, "dumps", dumps)
        body = encode_json({"tags": [{"tag": str(i)} for i in range(10_000)]})
        self.assertEqual(len(json.loads(body)["tags"]), 10_000)
        self.assertEqual(max(calls), ENCODE_SLICE)
        self.assertEqual(sum(calls), 10_000)
