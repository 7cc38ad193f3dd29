"""A history of alerts and vendor incidents worked out by hand, for the report's tests."""

from datetime import UTC, datetime

from commands.reports.periods import Period
from storage.db import transaction
from storage.models import Alert, AlertTransition, VendorNotice

NOW = datetime(2026, 12, 1, tzinfo=UTC)
PERIOD = Period(datetime(2026, 11, 1, tzinfo=UTC), NOW, "November 2026")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def history(session, integration: str, key: str, steps, root_cause=None, source="generic") -> None:
    """An alert and its transitions: steps are (time, from, to)."""
    last_to = steps[-1][2]
    resolves = [when for when, _, to in steps if to == "resolved"]
    alert = Alert(
        integration_name=integration,
        integration_id=integration,
        key=key,
        status=last_to,
        summary=f"{key} failed",
        first_seen_at=at(steps[0][0]),
        last_seen_at=at(steps[-1][0]),
        resolved_at=at(resolves[-1]) if last_to == "resolved" else None,
        root_cause=root_cause,
        source=source,
    )
    session.add(alert)
    session.flush()
    for when, before, after in steps:
        session.add(
            AlertTransition(
                alert_id=alert.id, at=at(when), from_status=before, to_status=after, reason="t"
            )
        )


def notice(session, system: str, kind: str, start: str, end: str | None) -> None:
    session.add(
        VendorNotice(
            system_id=system,
            notice_id=f"{kind}-{start}",
            kind=kind,
            name=kind,
            status="resolved" if end else "investigating",
            first_seen_at=at(start),
            resolved_at=at(end) if end else None,
            detail={},
        )
    )


def november(runtime) -> None:
    """Every alert, transition and incident of the hand-worked history."""
    with transaction(runtime.deps.sessions) as s:
        # crm (Slate → Banner). A: began before the period, resolved two hours into it.
        history(
            s,
            "crm",
            "a",
            [("2026-10-31T22:00", None, "firing"), ("2026-11-01T02:00", "firing", "resolved")],
            root_cause="network",
        )
        # B: acknowledged after 15 min and resolved after 2 h; fired again ten days later,
        # acknowledged after 1 h and resolved after 1 h 30.
        history(
            s,
            "crm",
            "b",
            [
                ("2026-11-10T10:00", None, "firing"),
                ("2026-11-10T10:15", "firing", "acknowledged"),
                ("2026-11-10T12:00", "acknowledged", "resolved"),
                ("2026-11-20T08:00", "resolved", "firing"),
                ("2026-11-20T09:00", "firing", "acknowledged"),
                ("2026-11-20T09:30", "acknowledged", "resolved"),
            ],
            root_cause="config",
        )
        # C: overlaps B's first failure; never acknowledged, resolved after 2 h.
        history(
            s,
            "crm",
            "c",
            [("2026-11-10T11:00", None, "firing"), ("2026-11-10T13:00", "firing", "resolved")],
        )
        # D: still firing when the period ends.
        history(s, "crm", "d", [("2026-11-30T20:00", None, "firing")])
        # canvas-enroll (Banner → Canvas): overlaps B's second failure.
        history(
            s,
            "canvas-enroll",
            "e",
            [("2026-11-20T09:00", None, "firing"), ("2026-11-20T11:00", "firing", "resolved")],
        )
        # An alert resolved before the period: not in it at all.
        history(
            s,
            "crm",
            "old",
            [("2026-10-01T09:00", None, "firing"), ("2026-10-01T10:00", "firing", "resolved")],
            root_cause="data",
        )
        # Banner's status page: an incident during crm's failure of 10:00-13:00, one while
        # nothing failed, and a maintenance (not an incident).
        notice(s, "banner", "incident", "2026-11-10T11:30", "2026-11-10T12:30")
        notice(s, "banner", "incident", "2026-11-25T00:00", "2026-11-25T06:00")
        notice(s, "banner", "maintenance", "2026-11-20T08:00", "2026-11-20T10:00")
