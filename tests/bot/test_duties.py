"""The scheduled duties of a tick: a duty that fails is logged and counted, and the duties
after it still run."""

from __future__ import annotations

import logging
from datetime import timedelta

from prometheus_client import REGISTRY
from sqlalchemy import select

from bot.workers.duties import Duty
from storage.db import transaction
from storage.models import Alert, Heartbeat
from tests.helpers.runtime import make_settings


def runs_counted(duty: str, result: str = "ok") -> float:
    value = REGISTRY.get_sample_value("integ_duty_runs_total", {"duty": duty, "result": result})
    return value or 0.0


def failures_counted(duty: str) -> float:
    return runs_counted(duty, "failed")


def test_every_duty_of_a_tick_is_named_and_runs(database_url, make_runtime):
    runtime = make_runtime(make_settings(database_url, INTEG_DIGEST_CHANNEL="C0DIGEST1"))
    names = [duty.name for duty in runtime.duties]
    assert names == [
        "catalog",
        "maintenance",
        "calendars",
        "missed_heartbeats",
        "escalations",
        "outages",
        "silences_ended",
        "homes",
        "reviews",
        "slack_events_pruned",
        "retention",
        "reliability_gauges",
        "digest",
        "monthly_report",
    ]
    before = {name: runs_counted(name) for name in names}
    runtime.tick()
    assert {name: runs_counted(name) - before[name] for name in names} == dict.fromkeys(names, 1)


def test_a_failing_duty_is_logged_and_counted_and_the_others_still_run(
    database_url, make_runtime, clock, caplog
):
    runtime = make_runtime(make_settings(database_url))

    def broken() -> int:
        raise RuntimeError("database went away")

    # First in line, so that everything a tick does comes after it.
    runtime.duties.insert(0, Duty("broken", broken))
    with transaction(runtime.deps.sessions) as session:
        latest = max(d for d in session.scalars(select(Heartbeat.due_at)) if d is not None)
    clock.now = latest + timedelta(minutes=1)
    counted = failures_counted("broken")

    with caplog.at_level(logging.ERROR, logger="bot.workers.duties"):
        runtime.tick()

    assert failures_counted("broken") == counted + 1
    [record] = [r for r in caplog.records if r.name == "bot.workers.duties"]
    assert "duty broken failed" in record.getMessage()
    assert record.exc_info is not None and "database went away" in str(record.exc_info[1])
    # The missed-heartbeat duty ran after the broken one: every heartbeat is alerting now.
    with transaction(runtime.deps.sessions) as session:
        beats = {h.integration_id for h in session.scalars(select(Heartbeat))}
        alerted = {a.integration_id for a in session.scalars(select(Alert))}
    assert beats and beats <= alerted
