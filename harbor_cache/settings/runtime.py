"""Settings that change at run time: typed, validated, kept in the index.

The core reads them from memory on every lookup (``settings.get(key)``), so a
change through ``/api/v1/config`` takes effect at the next request or eviction
pass without a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

GIB = 1 << 30


class SettingError(ValueError):
    """An unknown key or a value its validator refuses; the message says why."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key


DAY = 86400
YEAR = 365 * DAY


def _parse_int(minimum: int, maximum: int) -> Callable[[str], int]:
    """ASCII digits only, between ``minimum`` and ``maximum``.

    Every integer setting has an upper bound: a value the server accepts must
    not break it later (a 400-digit TTL overflowed the clock arithmetic and
    turned every upstream 404 into a 500).
    """

    def parse(text: str) -> int:
        text = text.strip()
        digits = text[1:] if text.startswith("-") else text
        if not digits or len(digits) > 20 or not (digits.isascii() and digits.isdigit()):
            raise ValueError(f"expected an integer from {minimum} to {maximum}, got {text[:40]!r}")
        value = int(text)
        if not minimum <= value <= maximum:
            raise ValueError(f"must be from {minimum} to {maximum}")
        return value

    parse.bounds = (minimum, maximum)  # type: ignore[attr-defined]
    parse.schema = {"type": "integer", "minimum": minimum, "maximum": maximum}  # type: ignore[attr-defined]
    return parse


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


_parse_bool.schema = {"type": "boolean"}  # type: ignore[attr-defined]


def _parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")
        return text

    parse.schema = {"type": "string", "enum": list(choices)}  # type: ignore[attr-defined]
    return parse


def _parse_globs(text: str) -> tuple[str, ...]:
    """Comma-separated repository-name globs ("team/*, ci/*"); empty means none."""
    globs = tuple(g.strip() for g in text.split(",") if g.strip())
    if len(globs) > 100 or any(len(g) > 255 or not g.isprintable() or " " in g for g in globs):
        raise ValueError('expected up to 100 comma-separated globs without spaces, e.g. "team/*, ci/*"')
    return globs


@dataclass(frozen=True)
class Setting:
    key: str
    default: str
    parse: Callable[[str], Any]
    description: str


SETTINGS: dict[str, Setting] = {
    s.key: s
    for s in (
        Setting(
            "cache.max_size", str(10 * GIB), _parse_int(1, 1 << 60), "Bytes of proxied content kept before eviction"
        ),
        Setting(
            "cache.retention_days", "30", _parse_int(0, 36500), "Proxied entries unused this long are removed (0 = off)"
        ),
        Setting(
            "cache.min_free_bytes",
            str(GIB),
            _parse_int(0, 1 << 60),
            "Free disk space kept on the data directory: eviction frees space below it, /health is degraded below it",
        ),
        Setting(
            "cache.orphan_grace_seconds",
            "900",
            _parse_int(0, 7 * DAY),
            "A stored file no index row points at is removed once this old (a commit in progress is younger)",
        ),
        Setting("cache.eviction_policy", "lru", _parse_choice("lru", "lfu", "fifo"), "Which entries go first"),
        Setting(
            "cache.clear_rebuild_min_entries",
            "20000",
            _parse_int(0, 1 << 40),
            "A cache clear (sqlite) removing at least this many entries, and half the index or more, runs as one "
            "transaction that rebuilds the totals and search table (0 = always in batches)",
        ),
        Setting(
            "cache.tag_ttl_seconds", "300", _parse_int(0, YEAR), "Manifest tags are revalidated upstream after this"
        ),
        Setting("cache.negative_ttl_seconds", "60", _parse_int(0, YEAR), "An upstream 404 is remembered this long"),
        Setting(
            "maven.metadata_ttl_seconds",
            "300",
            _parse_int(0, YEAR),
            "maven-metadata.xml and SNAPSHOTs revalidate after",
        ),
        Setting(
            "maven.metadata_max_bytes",
            str(4 << 20),
            _parse_int(1024, 64 << 20),
            "A maven-metadata.xml larger than this is not deployed (400) nor merged into a group's",
        ),
        Setting(
            "maven.metadata_max_versions",
            "10000",
            _parse_int(1, 1_000_000),
            "A maven-metadata.xml listing more versions is not deployed (400) nor merged into a group's",
        ),
        Setting(
            "maven.metadata_max_version_length",
            "256",
            _parse_int(16, 4096),
            "A maven-metadata.xml naming a longer version is not deployed (400) nor merged into a group's",
        ),
        Setting(
            "maven.browse_page_size",
            "5000",
            _parse_int(1, 100_000),
            "Most children one browse response lists (and its limit's maximum); more are paged with next/cursor",
        ),
        Setting(
            "maven.repository_stats_ttl_seconds",
            "60",
            _parse_int(0, DAY),
            "GET /repositories answers from statistics this old at most, recomputed in the background (0 = each call)",
        ),
        Setting(
            "console.entries_count_max",
            "100000",
            _parse_int(1000, 1 << 40),
            "GET /api/v1/cache/entries counts matching entries up to this many (total_capped beyond)",
        ),
        Setting("registry.anonymous_pull", "true", _parse_bool, "Pulls without credentials are allowed"),
        Setting(
            "registry.hosted_names",
            "",
            _parse_globs,
            "Globs of names that are hosted even though a route claims them (never proxied; pushable)",
        ),
        Setting(
            "upstreams.probe_interval_seconds", "30", _parse_int(1, DAY), "Each OCI upstream gets a GET /v2/ this often"
        ),
        Setting(
            "upstreams.failing_probe_interval_seconds",
            "2",
            _parse_int(1, DAY),
            "A failing or blocked upstream is probed this often (at most probe_interval_seconds)",
        ),
        Setting(
            "upstreams.block_after_failures",
            "3",
            _parse_int(0, 1000),
            "Failures in a row that block an upstream (0 = never block)",
        ),
        Setting("upstreams.block_seconds", "60", _parse_int(1, DAY), "How long a blocked upstream is skipped"),
        Setting(
            "audit.retention_days",
            "90",
            _parse_int(0, 36500),
            "Audit log records older than this are dropped (0 = keep)",
        ),
        Setting(
            "audit.export_max_rows",
            "10000",
            _parse_int(1, 1000000),
            "Most audit records one export (GET /api/v1/audit/export) returns, newest first",
        ),
        Setting(
            "robots.max_expiry_days",
            "365",
            _parse_int(1, 36500),
            "The longest expires_in_days a robot account may be given (-1 or null: never expires, still allowed)",
        ),
        Setting(
            "retention.interval_seconds",
            "3600",
            _parse_int(0, 7 * DAY),
            "Tag retention rules are applied this often (0 = only when run through the API)",
        ),
        Setting(
            "uploads.max_sessions_per_user",
            "64",
            _parse_int(1, 100_000),
            "Open blob upload sessions one user (or all anonymous clients together) may hold; more get 429",
        ),
        Setting(
            "uploads.max_sessions",
            "1024",
            _parse_int(1, 1_000_000),
            "Open blob upload sessions in all (every node together); more get 429",
        ),
        Setting(
            "uploads.idle_seconds",
            "3600",
            _parse_int(60, 7 * DAY),
            "An upload session nobody touches for this long is removed with its bytes",
        ),
        Setting(
            "gc.grace_seconds",
            "3600",
            _parse_int(0, 30 * DAY),
            "Hosted content pushed, uploaded or mounted more recently than this is never garbage collected",
        ),
        Setting(
            "gc.interval_seconds",
            "86400",
            _parse_int(0, 30 * DAY),
            "Seconds between scheduled garbage collections of hosted content (0 = only on demand)",
        ),
        Setting(
            "gc.history",
            "50",
            _parse_int(1, 10_000),
            "How many garbage collection runs GET /api/v1/gc keeps",
        ),
        Setting(
            "sync.min_interval_seconds",
            "300",
            _parse_int(10, DAY),
            "The shortest interval_seconds a sync rule may have (shorter ones are refused with 400)",
        ),
        Setting(
            "sync.ratelimit_min_remaining",
            "10",
            _parse_int(0, 1_000_000),
            "A sync run stops when the upstream's ratelimit-remaining falls to this (0 = never stop for it)",
        ),
    )
}


class RuntimeSettings:
    """The current value of every runtime setting, mirrored from the index.

    A key never set has no row, yet the seed gives every entry an
    ``updated_at`` timestamp: for a key at its default it is when the
    default came into effect here, the start of this process or the reset
    (through this node, or seen by `reload`) that brought it back.
    """

    def __init__(self, index, clock):
        self._index = index
        self._clock = clock
        self._stored: dict[str, tuple[str, float]] = {}
        self._default_since = clock.seconds()
        self._reset_at: dict[str, float] = {}  # keys reset since the start: when their default came back
        self._values: dict[str, Any] = {k: s.parse(s.default) for k, s in SETTINGS.items()}

    async def load(self) -> None:
        """Read stored values at start-up; a stored value that no longer validates is ignored."""
        for row in await self._index.get_settings():
            setting = SETTINGS.get(row.key)
            if setting is None:
                continue
            try:
                self._values[row.key] = setting.parse(row.value)
            except ValueError:
                continue
            self._stored[row.key] = (row.value, row.updated_at)

    async def reload(self) -> None:
        """Mirror the index again: values changed or reset on another node sharing it apply here.

        Built aside and swapped in at once, so a request never sees a mix.
        """
        values = {k: s.parse(s.default) for k, s in SETTINGS.items()}
        stored: dict[str, tuple[str, float]] = {}
        for row in await self._index.get_settings():
            setting = SETTINGS.get(row.key)
            if setting is None:
                continue
            try:
                values[row.key] = setting.parse(row.value)
            except ValueError:
                continue
            stored[row.key] = (row.value, row.updated_at)
        now = self._clock.seconds()
        for key in self._stored.keys() - stored.keys():
            self._reset_at[key] = now  # reset (or made invalid) elsewhere: the default is back from now
        self._values, self._stored = values, stored

    def get(self, key: str) -> Any:
        return self._values[key]

    @staticmethod
    def validate(key: Any, value: Any) -> tuple[str, Any]:
        """Returns (text, parsed) or raises SettingError."""
        if not isinstance(key, str) or key not in SETTINGS:
            raise SettingError(str(key), "unknown configuration key")
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise SettingError(key, "value must be a string")
        try:
            parsed = SETTINGS[key].parse(value)
        except ValueError as e:
            raise SettingError(key, str(e)) from None
        return value.strip(), parsed

    def entry(self, key: str) -> dict[str, Any]:
        """One entry as the API shows it; a key at its default is dated when the default came into effect."""
        if key not in SETTINGS:
            raise SettingError(key, "unknown configuration key")
        stored = self._stored.get(key)
        return {
            "key": key,
            "value": stored[0] if stored else SETTINGS[key].default,
            "updated_at": stored[1] if stored else self._reset_at.get(key, self._default_since),
        }

    def entries(self) -> list[dict[str, Any]]:
        return [self.entry(k) for k in sorted(SETTINGS)]

    def schema(self) -> list[dict[str, Any]]:
        """Every key with its type, bounds, description, default and current value (the console's config page)."""
        out = []
        for key in sorted(SETTINGS):
            setting = SETTINGS[key]
            entry = self.entry(key)
            stored = self._stored.get(key)
            described = dict(getattr(setting.parse, "schema", {"type": "string"}))
            described.update(
                {
                    "key": key,
                    "description": setting.description,
                    "default": setting.default,
                    "value": entry["value"],
                    "updated_at": stored[1] if stored else None,  # null: at the default (the console's "default")
                }
            )
            out.append(described)
        return out

    async def update(self, pairs: list[tuple[Any, Any]]) -> int:
        """Validate every pair first, then store them all in one transaction."""
        checked = [(key, *self.validate(key, value)) for key, value in pairs]
        now = self._clock.seconds()
        count = await self._index.put_settings([(k, text) for k, text, _ in checked], now)
        for key, text, parsed in checked:
            self._values[key] = parsed
            self._stored[key] = (text, now)
        return count

    async def reset(self, key: str) -> bool:
        """Back to the default; returns whether a stored value existed."""
        if key not in SETTINGS:
            raise SettingError(key, "unknown configuration key")
        existed = await self._index.delete_setting(key)
        if self._stored.pop(key, None) is not None:
            self._reset_at[key] = self._clock.seconds()
        self._values[key] = SETTINGS[key].parse(SETTINGS[key].default)
        return existed
