"""The state of one integration as people mean it: ok, failing, silenced, review overdue."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import RowMapping
from sqlalchemy.orm import Session

from commands.catalog.views import integration_spec
from storage import queries
from storage.models import Alert, Integration, Silence


class Health(enum.StrEnum):
    OK = "ok"
    FAILING = "failing"
    SILENCED = "silenced"


HEALTH_EMOJI = {
    Health.OK: ":large_green_circle:",
    Health.FAILING: ":red_circle:",
    Health.SILENCED: ":no_bell:",
}


@dataclass(frozen=True)
class State:
    health: Health
    open_alerts: int
    latest_alert: Alert | None
    silence: Silence | None
    review_due: date
    last_reviewed: datetime | None
    # Read with the rest, for the monitor lines of `/integ status` (status_lines).
    monitors: RowMapping
    watched_pages: int

    def review_overdue(self, now: datetime) -> bool:
        return self.review_due < now.date()

    @property
    def emoji(self) -> str:
        return HEALTH_EMOJI[self.health]


def review_due(integ: Integration, last_reviewed: datetime | None) -> date:
    """Next review date: a cadence after the last review, else `first_due`, else a cadence
    after the integration entered the catalog."""
    review = integration_spec(integ).review
    interval = review.interval
    if last_reviewed is not None:
        return (last_reviewed + interval).date()
    if review.first_due is not None:
        return review.first_due
    added = integ.added_at if integ.added_at.tzinfo else integ.added_at.replace(tzinfo=UTC)
    return (added + interval).date()


def health(open_alerts: int, silenced: bool) -> Health:
    if silenced:
        return Health.SILENCED
    return Health.FAILING if open_alerts else Health.OK


def state_of(session: Session, integ: Integration, now: datetime) -> State:
    summary = queries.integration_summary(session, integ.id, now)
    latest = (
        session.get(Alert, summary.latest_open_alert_id)
        if summary.latest_open_alert_id is not None
        else None
    )
    silence = session.get(Silence, summary.silence_id) if summary.silence_id is not None else None
    return State(
        health=health(summary.open_alerts, silence is not None),
        open_alerts=summary.open_alerts,
        latest_alert=latest,
        silence=silence,
        review_due=review_due(integ, summary.last_reviewed_at),
        last_reviewed=summary.last_reviewed_at,
        monitors=summary.monitors,
        watched_pages=summary.watched_pages,
    )
