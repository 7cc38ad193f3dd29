"""The monthly reliability report: posted once, on the month's first working day at the
digest's hour in its time zone, to the digest channel, covering the last month."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from commands.reports.monthly import first_working_day, monthly_due
from storage.db import transaction
from storage.models import MonthlyReport, OutboxMessage
from tests.helpers.runtime import make_settings
from tests.reports.history import history

DIGEST = "C0DIGEST01"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_the_first_working_day_skips_the_weekend_and_keeps_the_local_hour_across_dst():
    assert str(first_working_day(2026, 11)) == "2026-11-02"  # the 1st is a Sunday
    assert str(first_working_day(2027, 5)) == "2027-05-03"  # the 1st is a Saturday
    chicago = "America/Chicago"
    # 09:00 in Chicago is 15:00 UTC in winter (CST) and 14:00 UTC in summer (CDT).
    winter = monthly_due(at("2026-12-01T15:00"), 9, chicago)
    assert winter is not None and winter.scheduled_at == at("2026-12-01T15:00")
    assert winter.period.label == "November 2026"
    summer = monthly_due(at("2027-04-01T14:30"), 9, chicago)
    assert summer is not None and summer.scheduled_at == at("2027-04-01T14:00")
    assert summer.period.label == "March 2027"
    assert monthly_due(at("2026-12-01T14:59"), 9, chicago) is None  # not yet
    assert monthly_due(at("2026-12-04T15:01"), 9, chicago) is None  # more than 3 days late
    assert monthly_due(at("2026-12-02T15:00"), 9, "UTC") is not None  # late, still posted


def monthly_posts(runtime) -> list[OutboxMessage]:
    with runtime.deps.sessions() as session:
        return list(
            session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.channel == DIGEST, OutboxMessage.kind == "message"
                )
            )
        )


def test_last_months_report_is_posted_once_to_the_digest_channel_by_two_processes(
    database_url, make_runtime, clock
):
    settings = make_settings(database_url, INTEG_DIGEST_CHANNEL=DIGEST, INTEG_DIGEST_HOUR="9")
    # A Wednesday, so the weekly digest (Mondays) stays out of the way.
    clock.now = at("2026-11-30T12:00")
    first = make_runtime(settings)
    with transaction(first.deps.sessions) as s:
        history(
            s,
            "crm",
            "load",
            [("2026-11-10T10:00", None, "firing"), ("2026-11-10T12:00", "firing", "resolved")],
            root_cause="config",
        )
    first.tick()
    assert [p for p in monthly_posts(first) if "reliability" in str(p.payload)] == []
    clock.now = at("2026-12-01T09:05")
    second = make_runtime(settings)
    first.tick()
    second.tick()
    first.tick()
    reports = [p for p in monthly_posts(first) if "reliability" in str(p.payload)]
    assert len(reports) == 1
    shown = str(reports[0].payload)
    assert "Integration reliability, November 2026" in shown
    assert "*Alerts opened:* 1 (0 acknowledged, 1 resolved)" in shown
    assert "`crm` 2h failing, 1 opened, MTTR 2h" in shown
    assert "config 1" in shown
    with first.deps.sessions() as session:
        [row] = session.scalars(select(MonthlyReport)).all()
        assert (str(row.month), row.channel, row.outbox_id) == ("2026-11-01", DIGEST, reports[0].id)


def test_a_report_missed_while_the_bot_was_down_is_posted_late_and_says_so(
    database_url, make_runtime, clock
):
    settings = make_settings(database_url, INTEG_DIGEST_CHANNEL=DIGEST)
    clock.now = at("2026-12-03T10:00")
    runtime = make_runtime(settings)
    runtime.tick()
    [report] = [p for p in monthly_posts(runtime) if "reliability" in str(p.payload)]
    assert "posted late, the bot was not running then" in str(report.payload)
    clock.now += timedelta(hours=1)
    runtime.tick()
    assert len([p for p in monthly_posts(runtime) if "reliability" in str(p.payload)]) == 1


def test_a_report_more_than_three_days_late_is_skipped(database_url, make_runtime, clock):
    clock.now = at("2026-12-04T09:01")  # due 1 December 09:00 UTC
    runtime = make_runtime(make_settings(database_url, INTEG_DIGEST_CHANNEL=DIGEST))
    runtime.tick()
    assert [p for p in monthly_posts(runtime) if "reliability" in str(p.payload)] == []
