"""Reading an upstream registry's ``WWW-Authenticate`` challenge.

Registries answer 401 with ``Bearer realm="...",service="...",scope="..."``
(token auth) or ``Basic realm="..."``.  The parser is lenient: it never
raises, and skips what it cannot read, because a garbled challenge should
end as "upstream refused us", not as a crash.
"""

from __future__ import annotations

__all__ = ["parse_www_authenticate"]

_SEPARATORS = " \t,"


def _read_token(value: str, i: int, stops: str) -> tuple[str, int]:
    start = i
    while i < len(value) and value[i] not in stops:
        i += 1
    return value[start:i], i


def _read_quoted(value: str, i: int) -> tuple[str, int]:
    """Read a quoted-string starting just after its opening quote."""
    out = []
    while i < len(value):
        char = value[i]
        if char == "\\" and i + 1 < len(value):
            out.append(value[i + 1])
            i += 2
            continue
        if char == '"':
            return "".join(out), i + 1
        out.append(char)
        i += 1
    return "".join(out), i  # unterminated: take the rest


def _skip(value: str, i: int, chars: str) -> int:
    while i < len(value) and value[i] in chars:
        i += 1
    return i


def parse_www_authenticate(value: str) -> tuple[str, dict[str, str]]:
    """Split the first challenge of a ``WWW-Authenticate`` value.

    @return: ``(scheme, params)``: the scheme lowercased (``"bearer"``,
        ``"basic"``; ``""`` for an empty value) and its auth-params with
        lowercased names and unquoted values (``realm``, ``service``,
        ``scope``, ``error``...).  Commas and escaped quotes inside quoted
        values are kept.  A second challenge in the same value is ignored.
    """
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    i = _skip(value, 0, _SEPARATORS)
    scheme, i = _read_token(value, i, " \t,=")
    params: dict[str, str] = {}
    while True:
        i = _skip(value, i, _SEPARATORS)
        if i >= len(value):
            break
        if value[i] == '"':  # stray quoted string: skip it whole
            _, i = _read_quoted(value, i + 1)
            continue
        name, j = _read_token(value, i, ' \t,="')
        if not name:  # stray "=": skip it
            i += 1
            continue
        k = _skip(value, j, " \t")
        if k >= len(value) or value[k] != "=":
            break  # a bare token: the scheme of a next challenge
        k = _skip(value, k + 1, " \t")
        if k < len(value) and value[k] == '"':
            param, i = _read_quoted(value, k + 1)
        else:
            param, i = _read_token(value, k, _SEPARATORS)
        params.setdefault(name.lower(), param)
    return scheme.lower(), params
