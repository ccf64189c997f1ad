"""LDAP search filters built from what a client typed (RFC 4515), and what a DN's first RDN says.

A username goes into ``user_filter`` (``(uid={username})``); an unescaped
``*`` there would match every user (``alice*``) and a ``)(`` would add
clauses of the client's choosing (``*)(uid=admin``).  So every value is
escaped per RFC 4515 section 3 before it is put into a template: ``\\``,
``*``, ``(``, ``)`` and NUL become ``\\5c``, ``\\2a``, ``\\28``, ``\\29``,
``\\00``.  The template itself is the operator's, and is not escaped.
Placeholders are replaced literally (no ``str.format``: a filter may hold
braces of its own).
"""

from __future__ import annotations

_ESCAPES = {"\\": "\\5c", "*": "\\2a", "(": "\\28", ")": "\\29", "\0": "\\00"}


def escape_filter_value(value: str) -> str:
    """``value`` as an RFC 4515 assertion value: the five special characters hex-escaped."""
    return "".join(_ESCAPES.get(c, c) for c in value)


def fill_filter(template: str, **values: str) -> str:
    """``template`` with each ``{name}`` replaced by the escaped value (single pass: a value holding
    ``{dn}`` is not expanded again)."""
    out: list[str] = []
    i = 0
    while i < len(template):
        if template[i] == "{":
            end = template.find("}", i)
            name = template[i + 1 : end] if end > 0 else ""
            if name in values:
                out.append(escape_filter_value(values[name]))
                i = end + 1
                continue
        out.append(template[i])
        i += 1
    return "".join(out)


def first_rdn_value(dn: str, attribute: str = "cn") -> str | None:
    """The value of the DN's first RDN when its attribute is ``attribute`` (``cn=devs,ou=groups`` -> devs).

    Used for ``memberOf`` values; a multi-valued or escaped first RDN is taken as written, unescaped
    for the common ``\\,`` and ``\\XX`` forms.
    """
    head, _, _ = _split_first(dn)
    name, sep, value = head.partition("=")
    if not sep or name.strip().lower() != attribute.lower():
        return None
    return _unescape_dn_value(value.strip())


def _split_first(dn: str) -> tuple[str, str, str]:
    i = 0
    while i < len(dn):
        if dn[i] == "\\":
            i += 2
            continue
        if dn[i] == ",":
            return dn[:i], ",", dn[i + 1 :]
        i += 1
    return dn, "", ""


def _unescape_dn_value(value: str) -> str:
    out = bytearray()
    i = 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            pair = value[i + 1 : i + 3]
            if len(pair) == 2 and all(ch in "0123456789abcdefABCDEF" for ch in pair):
                out.append(int(pair, 16))
                i += 3
                continue
            out += value[i + 1].encode("utf-8")
            i += 2
            continue
        out += c.encode("utf-8")
        i += 1
    return out.decode("utf-8", "replace")
