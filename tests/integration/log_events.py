"""The server's log as events: its file holds JSON records (``twist``'s format), one per ``\\x1e``."""

from twisted.logger import eventFromJSON, formatEvent


def server_events(server) -> list[tuple[str, str]]:
    """(level name, formatted text) of every event in ``server``'s log; lines that are not JSON are skipped."""
    events = []
    for record in server.log_text().split("\x1e"):
        record = record.strip()
        if not record.startswith("{"):
            continue
        try:
            event = eventFromJSON(record)
        except ValueError:
            continue
        level = event.get("log_level")
        events.append((getattr(level, "name", str(level)), formatEvent(event) or ""))
    return events


def lines_at(server, level: str) -> list[str]:
    """The formatted events of ``server`` logged at ``level`` ("critical", "warn", ...)."""
    return [text for name, text in server_events(server) if name == level]
