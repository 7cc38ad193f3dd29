"""The reliability report's figures against a history worked out by hand: every expected
value below is written out, not computed by the code under test."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY, generate_latest

from bot.listeners.slash_commands import answer
from bot.reliability_metrics import refresh_duty
from commands.reports.export import write_report_csv
from commands.reports.figures import compute
from commands.reports.periods import PeriodInvalid, last_month, parse_period
from storage.db import transaction
from storage.models import HeartbeatPing
from tests.helpers.runtime import make_settings
from tests.reports.history import NOW, PERIOD, at, history


@pytest.fixture
def report(runtime):
    with runtime.deps.sessions() as s:
        return compute(s, PERIOD)


def test_an_integrations_figures_match_the_history_worked_out_by_hand(report):
    crm = report.integrations["crm"]
    # Opened in November: B twice, C, D (A began in October).
    assert (crm.opened, crm.acknowledged, crm.resolved) == (4, 2, 3)
    assert crm.mtta == timedelta(minutes=37, seconds=30)  # (15 min + 60 min) / 2
    assert crm.mttr == timedelta(hours=1, minutes=50)  # (2 h + 1 h 30 + 2 h) / 3
    # A 2 h (from midnight), B and C together 10:00-13:00 3 h, B again 1 h 30, D 4 h.
    assert crm.failing == timedelta(hours=10, minutes=30)
    assert crm.availability == pytest.approx(1 - 10.5 / 720)
    assert crm.vendor_failing == timedelta(hours=1)
    assert crm.vendor_share == pytest.approx(1 / 10.5)
    # The causes recorded on alerts resolved in November (the October one's is not).
    assert dict(crm.root_causes) == {"network": 1, "config": 1}


def test_a_systems_figures_count_overlapping_failures_of_its_integrations_once(report):
    banner = report.systems["banner"]
    assert (banner.opened, banner.acknowledged, banner.resolved) == (5, 2, 4)
    assert banner.mttr == timedelta(hours=1, minutes=52, seconds=30)  # 7 h 30 / 4
    # crm's 10 h 30, with canvas-enroll's 09:00-11:00 joining B's 08:00-09:30: 08:00-11:00.
    assert banner.failing == timedelta(hours=12)
    assert banner.vendor_failing == timedelta(hours=1)
    slate = report.systems["slate"]
    assert slate.failing == timedelta(hours=10, minutes=30) and slate.vendor_failing == timedelta()


def test_an_integration_without_alerts_was_available_all_along(report):
    grades = report.integrations["grades"]
    assert (grades.opened, grades.failing, grades.availability) == (0, timedelta(), 1.0)
    assert grades.mtta is None and grades.mttr is None and grades.vendor_share is None


def test_periods_are_read_as_people_write_them():
    assert parse_period("90d", NOW).start == NOW - timedelta(days=90)
    assert parse_period("", NOW).label == "the last 30 days"
    month = last_month(datetime(2026, 1, 15, 8, tzinfo=UTC))
    assert (month.start, month.end, month.label) == (
        at("2025-12-01T00:00"),
        at("2026-01-01T00:00"),
        "December 2025",
    )
    for bad in ("0d", "week", "30", "99999d"):
        with pytest.raises(PeriodInvalid, match="is not a period"):
            parse_period(bad, NOW)


def test_integ_report_shows_an_integrations_figures_for_last_month(runtime):
    reply = answer(runtime.deps, "report crm month", "U0ASKER01", None)
    shown = "\n".join(b["text"]["text"] for b in reply.blocks if b["type"] == "section")
    assert "November 2026" in shown
    assert "*Alerts opened:* 4 (2 acknowledged, 3 resolved)" in shown
    assert "*MTTA:* 37m · *MTTR:* 1h 50m" in shown
    assert "*Time failing:* 10h 30m (available 98.54%)" in shown
    assert "*Vendor share:* 10% of the time failing" in shown
    assert "*Root causes:* network 1, config 1" in shown or "config 1, network 1" in shown


def test_integ_report_of_a_system_lists_its_integrations_most_time_failing_first(runtime):
    reply = answer(runtime.deps, "report month banner", "U0ASKER01", None)
    shown = "\n".join(b["text"]["text"] for b in reply.blocks if b["type"] == "section")
    assert "*Time failing:* 12h (available 98.33%)" in shown
    assert shown.index("`crm` 10h 30m failing") < shown.index("`canvas-enroll` 2h failing")


def test_integ_report_overview_and_bad_input_answer_clearly(runtime):
    overview = answer(runtime.deps, "report 30d", "U0ASKER01", None)
    # The last 30 days before 1 December are November: crm's four and canvas-enroll's one.
    assert overview.text == (
        "*Reliability, the last 30 days:* 9 integrations, 5 alerts opened, 2 with time failing."
    )
    assert "`crm` 10h 30m failing" in str(overview.blocks)
    bad = answer(runtime.deps, "report crm week", "U0ASKER01", None)
    assert "`week` is not a period: say `30d`, `90d`" in bad.text
    unknown = answer(runtime.deps, "report payroll", "U0ASKER01", None)
    assert "No integration or system called `payroll`" in unknown.text
    bad_period = answer(runtime.deps, "report crm 0d", "U0ASKER01", None)
    assert "`0d` is not a period" in bad_period.text


def test_the_csv_export_has_a_row_per_integration_and_system_with_the_same_figures(runtime):
    out = io.StringIO()
    with runtime.deps.sessions() as s:
        written = write_report_csv(s, out, PERIOD)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert written == len(rows) == 9 + 8  # the example catalog's integrations and systems
    by_id = {(r["kind"], r["id"]): r for r in rows}
    crm = by_id[("integration", "crm")]
    assert {k: crm[k] for k in ("alerts_opened", "acknowledged", "resolved")} == {
        "alerts_opened": "4",
        "acknowledged": "2",
        "resolved": "3",
    }
    assert (crm["mtta_seconds"], crm["mttr_seconds"], crm["failing_seconds"]) == (
        "2250",
        "6600",
        "37800",
    )
    assert (crm["availability"], crm["vendor_failing_seconds"]) == ("0.985417", "3600")
    assert crm["root_causes"] == "config=1; network=1"
    assert (crm["period_start"], crm["period_end"]) == (
        "2026-11-01T00:00:00Z",
        "2026-12-01T00:00:00Z",
    )
    grades = by_id[("integration", "grades")]
    assert (grades["mtta_seconds"], grades["vendor_share"], grades["failing_seconds"]) == (
        "",
        "",
        "0",
    )
    assert by_id[("system", "banner")]["failing_seconds"] == "43200"


def scraped(metric: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(f"integ_reliability_{metric}", labels)


def test_the_last_30_days_figures_are_prometheus_gauges_refreshed_every_ten_minutes(runtime, clock):
    refresh = refresh_duty(runtime.deps)
    refresh()
    crm = {"kind": "integration", "id": "crm"}
    assert scraped("opened", **crm) == 4
    assert scraped("failing_seconds", **crm) == 37800
    assert scraped("mtta_seconds", **crm) == 2250
    assert scraped("mttr_seconds", **crm) == 6600
    assert scraped("availability_ratio", **crm) == pytest.approx(1 - 10.5 / 720)
    assert scraped("vendor_share_ratio", **crm) == pytest.approx(1 / 10.5)
    assert scraped("failing_seconds", kind="system", id="banner") == 43200
    # Nothing to average: no series rather than a made-up zero.
    assert scraped("mttr_seconds", kind="integration", id="grades") is None
    assert scraped("availability_ratio", kind="integration", id="grades") == 1.0
    # As /metrics serves them.
    assert 'integ_reliability_opened{id="crm",kind="integration"} 4.0' in generate_latest().decode()

    with transaction(runtime.deps.sessions) as s:
        history(s, "grades", "late", [("2026-11-30T23:00", None, "firing")])
    clock.now += timedelta(minutes=5)
    refresh()
    assert scraped("opened", kind="integration", id="grades") == 0  # not ten minutes yet
    clock.now += timedelta(minutes=6)
    refresh()
    assert scraped("opened", kind="integration", id="grades") == 1


def ping(integration: str, when: str, kind: str) -> HeartbeatPing:
    return HeartbeatPing(integration_id=integration, at=at(when), kind=kind, method="GET")


def test_heartbeat_runs_and_probe_availability_come_from_pings_and_monitor_alerts(
    database_url, make_runtime, clock
):
    clock.now = NOW
    runtime = make_runtime(make_settings(database_url))
    with transaction(runtime.deps.sessions) as s:
        # hr-feed's heartbeat: three runs reported in November, one in October; one night
        # missed (02:00-05:00 on the 15th). Its probe failed for half an hour on the 16th.
        for when in (
            "2026-10-30T11:30",
            "2026-11-02T11:30",
            "2026-11-03T11:31",
            "2026-11-04T11:29",
        ):
            s.add(
                HeartbeatPing(integration_id="hr-feed", at=at(when), kind="success", method="GET")
            )
        s.add(
            HeartbeatPing(
                integration_id="hr-feed", at=at("2026-11-05T11:00"), kind="start", method="GET"
            )
        )
        history(
            s,
            "hr-feed",
            "heartbeat",
            [("2026-11-15T02:00", None, "firing"), ("2026-11-15T05:00", "firing", "resolved")],
            source="heartbeat",
        )
        history(
            s,
            "hr-feed",
            "probe",
            [("2026-11-16T10:00", None, "firing"), ("2026-11-16T10:30", "firing", "resolved")],
            source="probe",
        )
    with runtime.deps.sessions() as s:
        hr = compute(s, PERIOD).integrations["hr-feed"]
        crm = compute(s, PERIOD).integrations["crm"]
    assert (hr.runs_reported, hr.runs_alerted) == (3, 1)
    assert hr.probe_availability == pytest.approx(1 - 0.5 / 720)
    assert hr.failing == timedelta(hours=3, minutes=30)
    # crm has a heartbeat in the example catalog and no pings: none reported, none alerted.
    assert (crm.runs_reported, crm.runs_alerted, crm.probe_availability) == (0, 0, None)
    shown = answer(runtime.deps, "report hr-feed month", "U0ASKER01", None)
    text = str(shown.blocks)
    assert "*Heartbeat:* 3 run(s) reported, 1 missed, late or failed" in text
    assert "*Probe:* available 99.93%" in text
