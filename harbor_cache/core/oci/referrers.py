"""Referrers of proxied images: the OCI 1.1 referrers API through the cache.

Signatures, SBOMs and attestations attached upstream name the image as their
``subject``; a client finds them with ``GET /v2/<name>/referrers/<digest>``.
For a proxied name the upstream is asked the same (``artifactType`` passed
through, and applied here too, since a registry may ignore it); when every
upstream answers 404 the registry has no referrers API and the spec's
fallback is read instead: the tag ``sha256-<hex>`` holding an image index of
the referrers (that tag goes through the ordinary tag path, so it is cached
and served stale like any tag).  The answer is kept in memory for
``cache.tag_ttl_seconds``, like a tag; when the upstream cannot answer, the
last answer is served stale, else the cached fallback tag, else nothing
(the hosted referrers alone, with a log line) — never an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger

from harbor_cache.core.oci.tags import ProxyTags
from harbor_cache.errors import HarborError, ManifestUnknown
from harbor_cache.grammar.mediatypes import OCI_INDEX
from harbor_cache.upstream.http import UpstreamError, UpstreamNotFound
from harbor_cache.upstream.registry import read_limited

log = Logger()

# How many (name, subject, artifactType) answers memory keeps; the oldest go first.
MAX_REFERRER_ANSWERS = 10_000


@dataclass
class ReferrersAnswer:
    """Descriptors of a subject's referrers as an upstream gave them, and when."""

    manifests: list[dict[str, Any]]
    fetched_at: float


def referrers_tag(subject: str) -> str:
    """The fallback tag of the referrers tag schema: ``sha256:<hex>`` -> ``sha256-<hex>``.

    The spec truncates the algorithm to 32 characters and the encoded part to 64, so a tag stays valid.
    """
    algorithm, _, encoded = subject.partition(":")
    return f"{algorithm[:32]}-{encoded[:64]}"


def referrer_descriptors(document: Any) -> list[dict[str, Any]]:
    """The descriptors of an image index's ``manifests`` that carry a digest; ValueError when it is no index."""
    if not isinstance(document, dict) or not isinstance(document.get("manifests", []), list):
        raise ValueError("not an image index")
    return [d for d in document.get("manifests") or [] if isinstance(d, dict) and isinstance(d.get("digest"), str)]


def filter_artifact_type(manifests: list[dict[str, Any]], artifact_type: str | None) -> list[dict[str, Any]]:
    """Only the descriptors of ``artifact_type`` (all when None)."""
    if artifact_type is None:
        return list(manifests)
    return [d for d in manifests if d.get("artifactType") == artifact_type]


class ProxyReferrers(ProxyTags):
    """The referrers of a proxied subject: upstream API, else the tag schema; cached like a tag."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # (key, subject, artifactType) -> the last upstream answer, oldest first.
        self._referrer_answers: dict[tuple[str, str, str | None], ReferrersAnswer] = {}

    def upstreams_changed(self) -> None:
        """The upstream list was replaced: answers from the old list may not hold any more."""
        super().upstreams_changed()
        self._referrer_answers.clear()

    async def proxied_referrers(
        self, key: str, subject: str, artifact_type: str | None
    ) -> tuple[list[dict[str, Any]], bool]:
        """(descriptors of ``subject``'s referrers upstream, stale), filtered by ``artifact_type``.

        ``stale`` is True when the upstream could not answer and an older
        answer (or none at all) is given instead.
        """
        answers = self._referrer_answers
        slot = (key, subject, artifact_type)
        cached = answers.get(slot)
        if cached is not None and self.clock.seconds() - cached.fetched_at < self.settings.get("cache.tag_ttl_seconds"):
            return filter_artifact_type(cached.manifests, artifact_type), False

        async def work() -> tuple[list[dict[str, Any]], bool]:
            try:
                manifests, stale = await self._fetch_referrers(key, subject, artifact_type)
            except (UpstreamError, HarborError) as e:
                return await self._stale_referrers(key, subject, artifact_type, e)
            if stale:  # the fallback tag, served stale: not an answer to keep for a TTL
                return filter_artifact_type(manifests, artifact_type), True
            answers.pop(slot, None)
            answers[slot] = ReferrersAnswer(manifests, self.clock.seconds())
            while len(answers) > MAX_REFERRER_ANSWERS:
                del answers[next(iter(answers))]
            return filter_artifact_type(manifests, artifact_type), False

        result: tuple[list[dict[str, Any]], bool] = await self._single.run(("referrers", *slot), work)
        return result

    async def _fetch_referrers(
        self, key: str, subject: str, artifact_type: str | None
    ) -> tuple[list[dict[str, Any]], bool]:
        """Ask the upstream's referrers API; on 404 from every upstream, read the ``sha256-<hex>`` tag.

        (descriptors, stale): stale when the fallback tag was served stale.
        """
        query = {"artifactType": artifact_type} if artifact_type is not None else None
        try:
            up, response = await self._first_answer(key, "GET", "referrers", subject, accept=OCI_INDEX, query=query)
        except UpstreamNotFound:
            return await self._referrers_by_tag(key, subject)
        try:
            return referrer_descriptors(json.loads(await read_limited(response))), False
        except UpstreamError:
            raise
        except Exception as e:
            self.outcomes.upstream_error(up.name, "body")
            raise UpstreamError(f"{up.name} sent an unreadable referrers index: {e}", "body") from None

    async def _referrers_by_tag(self, key: str, subject: str) -> tuple[list[dict[str, Any]], bool]:
        """The referrers tag schema: the index under ``sha256-<hex>``; none when there is no such tag."""
        try:
            result = await self.get_manifest_by_tag(key, referrers_tag(subject))
        except ManifestUnknown:
            return [], False
        try:
            return referrer_descriptors(json.loads(result.body)), result.stale
        except ValueError as e:
            log.warn(
                "{key}:{tag} is not an image index, so no referrers: {error}",
                key=key,
                tag=referrers_tag(subject),
                error=str(e),
            )
            return [], result.stale

    async def _stale_referrers(
        self, key: str, subject: str, artifact_type: str | None, error: Exception
    ) -> tuple[list[dict[str, Any]], bool]:
        """No upstream answer: the last answer, else the cached fallback tag, else none (logged)."""
        cached = self._referrer_answers.get((key, subject, artifact_type))
        if cached is not None:
            return filter_artifact_type(cached.manifests, artifact_type), True
        state = await self._tag_state(key, referrers_tag(subject))
        if state is not None:
            stale = await self._stale(key, state)
            if stale is not None:
                try:
                    return filter_artifact_type(referrer_descriptors(json.loads(stale.body)), artifact_type), True
                except ValueError:
                    pass
        log.warn(
            "referrers of {key}@{subject}: no upstream answer and none cached, hosted ones only: {error}",
            key=key,
            subject=subject,
            error=str(error),
        )
        return [], True
