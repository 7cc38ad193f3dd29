"""Statuspage's public summary (`/api/v2/summary.json`) read into plain values: pure
functions, no I/O. The fetching is done in bot/ (`bot.workers.status_pages`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from storage.models import NoticeKind
from storage.types import storable

INCIDENT = NoticeKind.INCIDENT.value
MAINTENANCE = NoticeKind.MAINTENANCE.value
# Statuses the page itself uses for a notice that is over.
OVER_STATUSES = frozenset({"resolved", "postmortem", "completed"})
ID_LIMIT = 100  # vendor_notices.notice_id


class SummaryError(ValueError):
    """What was fetched is not a Statuspage summary."""


@dataclass(frozen=True)
class PageNotice:
    """One incident or maintenance as the page shows it now."""

    notice_id: str
    kind: str
    name: str
    status: str
    impact: str | None
    url: str | None
    updated_at: datetime | None
    resolved_at: datetime | None  # the page's own, when it says the notice is over
    over: bool
    detail: dict[str, Any]


@dataclass(frozen=True)
class Summary:
    indicator: str | None
    description: str | None
    notices: list[PageNotice]


# -- reading the page -----------------------------------------------------------------------


def summary_url(base: str) -> str:
    """The summary endpoint of a page given by its base URL (or already by that endpoint)."""
    base = base.strip()
    if base.rstrip("/").endswith(".json"):
        return base
    return base.rstrip("/") + "/api/v2/summary.json"


def parse_summary(data: Any) -> Summary:
    """Read a decoded summary.json. Raises SummaryError for anything else, so that an error
    page or an unrelated JSON document is never read as "no incidents" (which would mark
    every open notice resolved)."""
    if not isinstance(data, dict):
        raise SummaryError("not a JSON object")
    incidents = data.get("incidents")
    maintenances = data.get("scheduled_maintenances")
    if not isinstance(incidents, list) or not isinstance(maintenances, list):
        raise SummaryError("no incidents and scheduled_maintenances lists")
    status: dict[str, Any] = data["status"] if isinstance(data.get("status"), dict) else {}
    notices = [_notice(item, INCIDENT) for item in incidents]
    notices += [_notice(item, MAINTENANCE) for item in maintenances]
    return Summary(
        indicator=_text(status.get("indicator"), 20),
        description=_text(status.get("description"), 500),
        notices=notices,
    )


def _notice(item: Any, kind: str) -> PageNotice:
    if not isinstance(item, dict):
        raise SummaryError(f"an entry of {kind}s is not an object")
    notice_id = _text(item.get("id"), ID_LIMIT)
    if not notice_id:
        raise SummaryError(f"an entry of {kind}s has no id")
    status = _text(item.get("status"), 30) or "unknown"
    latest = _latest_update(item.get("incident_updates"))
    components = [
        str(c["name"])
        for c in item.get("components") or []
        if isinstance(c, dict) and isinstance(c.get("name"), str)
    ]
    url = _text(item.get("shortlink"), 2000)
    detail: dict[str, Any] = {
        "latest_update": storable(latest["body"]) if latest else None,
        "latest_update_at": _iso(parse_time(latest.get("created_at"))) if latest else None,
        "components": components[:20],
        "scheduled_for": _iso(parse_time(item.get("scheduled_for"))),
        "scheduled_until": _iso(parse_time(item.get("scheduled_until"))),
    }
    return PageNotice(
        notice_id=notice_id,
        kind=kind,
        name=_text(item.get("name"), 1000) or "(no name)",
        status=status,
        impact=_text(item.get("impact"), 20),
        # Only a web link is linked: the page is outside text, and a `javascript:` or
        # `slack://` target has no business in a message.
        url=url if url and url.startswith(("https://", "http://")) else None,
        updated_at=parse_time(item.get("updated_at")),
        resolved_at=parse_time(item.get("resolved_at")),
        over=status in OVER_STATUSES,
        detail=detail,
    )


def _latest_update(updates: Any) -> dict[str, Any] | None:
    """The newest update. The API lists them newest first, which also settles equal times."""
    found = [u for u in updates or [] if isinstance(u, dict) and isinstance(u.get("body"), str)]
    if not found:
        return None
    epoch = datetime.min.replace(tzinfo=UTC)
    return max(found, key=lambda u: parse_time(u.get("created_at")) or epoch)


def _text(value: Any, limit: int) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = storable(str(value)).strip()
    return text[:limit] or None


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
