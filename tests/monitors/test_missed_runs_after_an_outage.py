"""Missed runs around an outage of the bot's database: a deadline that fell while pings were
being refused is judged only once the outage is over and the heartbeat's grace has passed
again, so the job's retried ping comes in time; every other deadline is judged as ever."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update

from commands.monitors.heartbeats import raise_missed
from storage.db import transaction
from storage.models import Alert, Heartbeat
from tests.helpers.runtime import make_settings

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
OUTAGE = (T0, T0 + timedelta(minutes=20))  # the database down from 10:00 to 10:20

CATALOG = """\
systems:
  - {id: source-system, name: Source system}
  - {id: target-system, name: Target system}
integrations:
"""
# (integration, grace): each runs hourly.
JOBS = [("before", "10m"), ("during", "10m"), ("just-after", "10m"), ("long-grace", "1h")]


def write_catalog(tmp_path: Path) -> Path:
    lines = [CATALOG]
    for job, grace in JOBS:
        lines.append(
            f"  - {{id: {job}, name: Job {job}, source: source-system, target: target-system,"
            f" mechanism: flat-file, schedule: realtime, owner: U0OWNER01, channel: C0JOBS001,"
            f" heartbeat: {{key: key-of-{job}, every: 1h, grace: {grace}}}}}\n"
        )
    path = tmp_path / "catalog.yml"
    path.write_text("".join(lines))
    return path


def runtime_with_deadlines(database_url, make_runtime, tmp_path, deadlines):
    runtime = make_runtime(make_settings(database_url, catalog=write_catalog(tmp_path)))
    with transaction(runtime.deps.sessions) as session:
        for job, due_at in deadlines.items():
            session.execute(
                update(Heartbeat).where(Heartbeat.integration_id == job).values(due_at=due_at)
            )
    return runtime


def raise_now(runtime, now, outages, limit=100) -> int:
    with transaction(runtime.deps.sessions) as session:
        return raise_missed(session, now, limit, outages)


def alerted(runtime) -> set[str]:
    with runtime.deps.sessions() as session:
        return set(session.scalars(select(Alert.integration_id).where(Alert.key == "heartbeat")))


def test_a_deadline_that_fell_during_an_outage_is_judged_after_the_outage_and_the_grace(
    database_url, make_runtime, tmp_path
):
    runtime = runtime_with_deadlines(
        database_url,
        make_runtime,
        tmp_path,
        {
            "before": T0 - timedelta(minutes=1),  # missed before anything went wrong
            "during": T0 + timedelta(minutes=10),
            "just-after": T0 + timedelta(minutes=25),  # within the grace after the outage
        },
    )
    # The outage is over: what was missed before it is raised, the rest waits.
    assert raise_now(runtime, OUTAGE[1] + timedelta(minutes=9), [OUTAGE]) == 1
    assert alerted(runtime) == {"before"}
    # Ten minutes (their grace) after the database came back, both are judged.
    assert raise_now(runtime, OUTAGE[1] + timedelta(minutes=10), [OUTAGE]) == 2
    assert alerted(runtime) == {"before", "during", "just-after"}


def test_no_deadline_after_the_start_of_an_outage_is_judged_while_it_lasts(
    database_url, make_runtime, tmp_path
):
    runtime = runtime_with_deadlines(
        database_url,
        make_runtime,
        tmp_path,
        {"before": T0 - timedelta(minutes=1), "during": T0 + timedelta(minutes=10)},
    )
    assert raise_now(runtime, T0 + timedelta(hours=5), [(T0, None)]) == 1
    assert alerted(runtime) == {"before"}


def test_without_an_outage_a_deadline_is_judged_at_its_own_time(
    database_url, make_runtime, tmp_path
):
    runtime = runtime_with_deadlines(
        database_url, make_runtime, tmp_path, {"during": T0 + timedelta(minutes=10)}
    )
    earlier = [(T0 - timedelta(hours=3), T0 - timedelta(hours=2))]  # long over
    assert raise_now(runtime, T0 + timedelta(minutes=10), earlier) == 1
    assert alerted(runtime) == {"during"}


def test_deadlines_waiting_for_an_outage_do_not_hold_up_the_ones_behind_them(
    database_url, make_runtime, tmp_path
):
    runtime = runtime_with_deadlines(
        database_url,
        make_runtime,
        tmp_path,
        {
            # First in line, and waiting an hour's grace after the outage...
            "long-grace": T0 + timedelta(minutes=5),
            # ... while this one's ten minutes have passed.
            "during": T0 + timedelta(minutes=10),
        },
    )
    now = OUTAGE[1] + timedelta(minutes=15)
    assert raise_now(runtime, now, [OUTAGE], limit=1) == 1
    assert alerted(runtime) == {"during"}
