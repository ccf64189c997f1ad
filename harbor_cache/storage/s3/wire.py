"""S3's XML and its error model: parsing answers, building request bodies, deciding what to retry.

Pure functions over bytes and codes (no I/O), so the retry policy and the
error mapping are tested without a server.  Retryable: the server-side
statuses (500, 502, 503, 504), throttling (429, ``SlowDown`` and its aliases),
``RequestTimeout`` (S3's "your upload was too slow", a 400), and every failure
to get an answer at all.  Any other 4xx is the request's fault and is raised
at once.  The backoff is "full jitter": a uniform draw from zero to the
exponential bound, so that clients throttled together do not retry together.
"""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import escape

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
RETRYABLE_CODES = frozenset(
    {
        "SlowDown",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequests",
    }
)
NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchUpload", "NotFound"})


def retryable(status: int | None, code: str) -> bool:
    """Whether a failed attempt may succeed if tried again (None status: no answer at all)."""
    return status is None or status in RETRYABLE_STATUS or code in RETRYABLE_CODES


def backoff_delay(failures: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait after the ``failures``-th failed attempt: uniform in [0, min(cap, base * 2**(failures-1)))."""
    bound = min(cap, base * (2 ** (failures - 1)))
    return rng.uniform(0, bound)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse(body: bytes) -> ET.Element:
    """The root element of an XML answer (namespaces are ignored by the helpers below)."""
    return ET.fromstring(body)


def children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def text(element: ET.Element, name: str, default: str = "") -> str:
    for child in element:
        if _local(child.tag) == name:
            return child.text or ""
    return default


def root_name(element: ET.Element) -> str:
    return _local(element.tag)


def error_of(status: int, body: bytes) -> tuple[str, str]:
    """(code, message) of an error answer; from the status when the body is empty or not S3's XML."""
    if body:
        try:
            root = parse(body)
        except ET.ParseError:
            pass
        else:
            if root_name(root) == "Error":
                return text(root, "Code") or f"HTTP{status}", text(root, "Message")
    fallback = {404: "NotFound", 403: "AccessDenied", 503: "ServiceUnavailable", 500: "InternalError"}
    return fallback.get(status, f"HTTP{status}"), ""


@dataclass(frozen=True)
class ObjectInfo:
    """What HEAD (or a listing) says about an object; ``key`` is relative to the client's prefix."""

    key: str
    size: int
    etag: str
    last_modified: str
    content_type: str | None = None


@dataclass(frozen=True)
class MultipartUpload:
    key: str
    upload_id: str
    initiated: str


def complete_body(parts: list[tuple[int, str]]) -> bytes:
    items = "".join(
        f"<Part><PartNumber>{number}</PartNumber><ETag>{escape(etag)}</ETag></Part>" for number, etag in parts
    )
    return f'<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUpload>{items}</CompleteMultipartUpload>'.encode()


def delete_body(keys: list[str]) -> bytes:
    items = "".join(f"<Object><Key>{escape(key)}</Key></Object>" for key in keys)
    return f'<?xml version="1.0" encoding="UTF-8"?><Delete><Quiet>true</Quiet>{items}</Delete>'.encode()
