"""Parsing of hook bodies into alert events: the recorded payloads in tests/data/hooks/ and
each way a body can be wrong."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from commands.alerts.payloads import (
    MAX_DETAILS,
    MAX_KEY,
    MAX_SUMMARY,
    PARSERS,
    AlertEvent,
    IntakeError,
    parse_alertmanager,
    parse_generic,
    parse_grafana,
)

PAYLOADS = Path(__file__).resolve().parents[1] / "data" / "hooks"


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def body(data: Any) -> bytes:
    return json.dumps(data).encode()


def am_alert(**changes: Any) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "status": "firing",
        "labels": {"alertname": "JobFailed", "integration": "crm", "severity": "critical"},
        "annotations": {"summary": "Job failed"},
        "startsAt": "2026-11-26T02:05:13.482Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example.edu:9090/graph?g0.expr=up",
        "fingerprint": "0123456789abcdef",
    }
    alert.update(changes)
    return alert


def am_body(*alerts: dict[str, Any], **changes: Any) -> bytes:
    data: dict[str, Any] = {
        "receiver": "integ-bot",
        "status": "firing",
        "alerts": list(alerts) or [am_alert()],
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example.edu:9093",
        "version": "4",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
    }
    data.update(changes)
    return body(data)


def grafana_body(*alerts: dict[str, Any], **changes: Any) -> bytes:
    data = json.loads(am_body(*alerts))
    data.update(version="1", orgId=1, title="[FIRING:1]", state="alerting", message="")
    data.update(changes)
    return body(data)


def reason(parser: str, raw: bytes) -> str:
    with pytest.raises(IntakeError) as caught:
        PARSERS[parser](raw)
    return str(caught.value)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# --- the recorded payloads -----------------------------------------------------------------


def test_an_alertmanager_group_gives_one_firing_event_per_alert():
    first, second = parse_alertmanager(payload("alertmanager_firing.json"))

    assert (first.source, first.integration, first.key, first.status) == (
        "alertmanager",
        "crm",
        "5f2a9c1e7b3d4a60",
        "firing",
    )
    assert first.summary == "Nightly load failed: 12 rows rejected"
    assert first.severity == "critical"
    assert first.url == (
        "http://prometheus.example.edu:9090/graph?g0.expr=increase%28integration_rows_rejected"
        "_total%7Bintegration%3D%22crm%22%7D%5B15m%5D%29+%3E+0&g0.tab=1"
    )
    assert first.occurred_at == datetime(2026, 11, 26, 2, 5, 13, 482000, tzinfo=UTC)
    assert first.labels["instance"] == "etl01.example.edu:9100"

    assert (second.key, second.severity, second.summary) == (
        "c04d81b6e2f9a317",
        "warning",
        "Nightly load failed: 3 rows rejected",
    )
    assert second.occurred_at == at("2026-11-26T02:06:43.117Z")


def test_alertmanager_details_are_the_description_then_the_other_annotations():
    first = parse_alertmanager(payload("alertmanager_firing.json"))[0]

    assert first.details == (
        "The Slate to Banner load rejected 12 rows at 02:05.\n"
        "The reject file is /data/slate/rejects/20261126.csv on etl01.\n"
        "runbook_url: https://wiki.example.edu/integ/crm"
    )


def test_a_resolved_alertmanager_alert_happened_when_it_ended():
    first, second = parse_alertmanager(payload("alertmanager_resolved.json"))

    assert [e.status for e in (first, second)] == ["resolved", "resolved"]
    assert [e.key for e in (first, second)] == ["5f2a9c1e7b3d4a60", "c04d81b6e2f9a317"]
    assert first.occurred_at == at("2026-11-26T03:20:13.482Z")
    assert second.occurred_at == at("2026-11-26T03:21:43.117Z")


def test_a_grafana_group_routes_each_alert_by_its_own_integration_label():
    journal, hr = parse_grafana(payload("grafana_firing.json"))

    assert (journal.source, journal.integration, journal.key, journal.status) == (
        "grafana",
        "ar-journal",
        "8d1f04c6a92e7b35",
        "firing",
    )
    assert journal.summary == "AR journal file has not arrived"
    assert journal.severity == "warning"
    # Grafana writes local time with an offset; events carry UTC.
    assert journal.occurred_at == datetime(2026, 11, 26, 6, 15, 10, tzinfo=UTC)
    assert (hr.integration, hr.key, hr.severity) == ("hr-feed", "2b7e9a0c13f45d68", "critical")
    assert hr.occurred_at == datetime(2026, 11, 26, 6, 16, 10, tzinfo=UTC)


def test_a_grafana_link_prefers_the_panel_and_falls_back_to_the_rule():
    journal, hr = parse_grafana(payload("grafana_firing.json"))

    assert journal.url == (
        "https://grafana.example.edu/d/integ-files?from=1764134110000&orgId=1&to=1764137710000"
        "&viewPanel=4"
    )
    # No panel or dashboard for this rule: Grafana sends empty strings.
    assert hr.url == "https://grafana.example.edu/alerting/grafana/be3kq9x1z0n5sd/view?orgId=1"


def test_a_grafana_link_uses_the_dashboard_when_there_is_no_panel():
    alert = am_alert(panelURL="", dashboardURL="https://grafana.example.edu/d/x?orgId=1")

    (event,) = parse_grafana(grafana_body(alert))

    assert event.url == "https://grafana.example.edu/d/x?orgId=1"


def test_grafana_details_include_the_value_string():
    journal = parse_grafana(payload("grafana_firing.json"))[0]

    assert journal.details == (
        "No journal file from Workday has reached the Banner SFTP drop since 05:00.\n"
        "Expected: ar_journal_YYYYMMDD.csv\n"
        "runbook_url: https://wiki.example.edu/integ/ar-journal\n"
        "values: [ var='A' labels={integration=ar-journal} value=0 ], "
        "[ var='C' labels={integration=ar-journal} value=1 ]"
    )


def test_a_resolved_grafana_group_resolves_the_same_keys():
    firing = parse_grafana(payload("grafana_firing.json"))
    resolved = parse_grafana(payload("grafana_resolved.json"))

    assert [(e.integration, e.key) for e in resolved] == [(e.integration, e.key) for e in firing]
    assert [e.status for e in resolved] == ["resolved", "resolved"]
    assert [e.occurred_at for e in resolved] == [
        datetime(2026, 11, 26, 6, 42, 10, tzinfo=UTC),
        datetime(2026, 11, 26, 6, 45, 10, tzinfo=UTC),
    ]


def test_a_generic_list_gives_one_event_per_item():
    full, minimal, resolved = parse_generic(payload("generic_list.json"))

    assert full == AlertEvent(
        source="generic",
        integration="crm",
        key="crm-nightly-2026-11-26",
        status="firing",
        summary="Nightly load failed: 12 rows rejected",
        details="SARADAP load rejected 12 of 4,310 applications:\n"
        "APST_CODE 'Z' is not valid (12 rows)",
        severity="critical",
        url="https://logs.example.edu/jobs/crm-nightly/20261126",
        occurred_at=datetime(2026, 11, 26, 2, 5, tzinfo=UTC),
        labels={},
    )
    assert (minimal.integration, minimal.status, minimal.severity) == (
        "canvas-enroll",
        "firing",
        "warning",
    )
    assert minimal.key == "Enrollment sync is 40 minutes behind"
    assert minimal.occurred_at == datetime(2026, 11, 26, 14, 40, tzinfo=UTC)
    assert (minimal.details, minimal.url) == (None, None)
    assert (resolved.status, resolved.key, resolved.summary) == (
        "resolved",
        "touchnet-callback-timeouts",
        "(no summary)",
    )


def test_the_parsers_are_found_by_hook_name():
    assert PARSERS == {
        "generic": parse_generic,
        "alertmanager": parse_alertmanager,
        "grafana": parse_grafana,
    }


# --- generic -------------------------------------------------------------------------------


def test_a_single_generic_object_is_the_same_as_a_list_of_one():
    alert = {"integration": "crm", "summary": "Nightly load failed"}

    assert parse_generic(body(alert)) == parse_generic(body([alert]))


def test_the_key_defaults_to_the_summary():
    (event,) = parse_generic(body({"integration": "crm", "summary": " Nightly load failed "}))

    assert event.key == event.summary == "Nightly load failed"


def test_an_empty_key_defaults_to_the_summary_too():
    (event,) = parse_generic(body({"integration": "crm", "summary": "Load failed", "key": " "}))

    assert event.key == "Load failed"


def test_a_generic_alert_without_status_is_firing():
    (event,) = parse_generic(body({"integration": "crm", "summary": "Load failed"}))

    assert event.status == "firing"


def test_the_integration_is_stripped_and_lowercased():
    (event,) = parse_generic(body({"integration": "  CRM ", "summary": "Load failed"}))

    assert event.integration == "crm"


def test_unknown_generic_fields_are_ignored():
    alert = {"integration": "crm", "summary": "Load failed", "host": {"name": "etl01"}, "n": 3}

    (event,) = parse_generic(body(alert))

    assert event.summary == "Load failed"


def test_a_naive_occurred_at_is_taken_as_utc():
    alert = {"integration": "crm", "summary": "x", "occurred_at": "2026-11-26T02:05:00"}

    (event,) = parse_generic(body(alert))

    assert event.occurred_at == datetime(2026, 11, 26, 2, 5, tzinfo=UTC)


def test_long_keys_stay_distinct_within_the_limit():
    head = "nightly-load/" + "x" * 600
    keys = [head + "-a", head + "-b"]

    events = [
        parse_generic(body({"integration": "crm", "summary": "s", "key": k}))[0] for k in keys
    ]

    assert events[0].key != events[1].key
    assert all(len(e.key) <= MAX_KEY for e in events)
    assert events[0].key.startswith(head[:450] + "…")


def test_a_key_at_the_limit_is_kept_whole():
    key = "k" * MAX_KEY

    (event,) = parse_generic(body({"integration": "crm", "summary": "s", "key": key}))

    assert event.key == key


def test_a_long_summary_is_cut_with_an_ellipsis_and_long_details_are_cut_too():
    alert = {"integration": "crm", "summary": "s" * 2_000, "details": "d" * 50_000, "key": "k"}

    (event,) = parse_generic(body(alert))

    assert len(event.summary) == MAX_SUMMARY and event.summary.endswith("…")
    assert event.details is not None
    assert len(event.details) == MAX_DETAILS and event.details.endswith("…")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("critical", "critical"),
        ("CRIT", "critical"),
        ("page", "critical"),
        ("high", "critical"),
        ("error", "error"),
        ("err", "error"),
        ("major", "error"),
        ("warning", "warning"),
        ("warn", "warning"),
        ("minor", "warning"),
        ("medium", "warning"),
        ("info", "info"),
        ("low", "info"),
        ("none", "info"),
        (" OK ", "info"),
        ("sev-banana", "error"),
        (None, "error"),
    ],
)
def test_severity_synonyms_map_to_the_four_levels(given, expected):
    alert = {"integration": "crm", "summary": "s", "severity": given}

    (event,) = parse_generic(body(alert))

    assert event.severity == expected


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "ftp://files.example.edu/x", "logs.example.edu/x", "https://", ""],
)
def test_only_http_urls_are_kept(url):
    (event,) = parse_generic(body({"integration": "crm", "summary": "s", "url": url}))

    assert event.url is None


def test_text_is_kept_as_sent_for_rendering_to_escape():
    summary = "Sync failed 🔥 <!channel> <@U0123> & <https://evil.example|click> — Ünïcödé"
    details = "line 1\n*bold* `code` <!here>"

    (event,) = parse_generic(body({"integration": "crm", "summary": summary, "details": details}))

    assert (event.summary, event.details, event.key) == (summary, details, summary)


def test_nul_characters_are_stripped_from_every_string():
    alert = am_alert(
        labels={"alertname": "Job\x00Failed", "integration": "c\x00rm", "te\x00am": "a\x00b"},
        annotations={"summary": "Load\x00 failed", "description": "d\x00"},
        fingerprint="ab\x00cd",
    )

    (event,) = parse_alertmanager(am_body(alert))

    assert (event.integration, event.key, event.summary, event.details) == (
        "crm",
        "abcd",
        "Load failed",
        "d",
    )
    assert event.labels == {"alertname": "JobFailed", "integration": "crm", "team": "ab"}


def test_an_unpaired_surrogate_escape_becomes_a_replacement_character():
    raw = b'{"integration": "crm", "summary": "bad \\ud800 half"}'

    (event,) = parse_generic(raw)

    assert event.summary == "bad \ufffd half"
    event.summary.encode("utf-8")


def test_a_byte_order_mark_is_tolerated():
    (event,) = parse_generic("\ufeff".encode() + body({"integration": "crm", "summary": "s"}))

    assert event.integration == "crm"


def test_a_thousand_generic_alerts_are_accepted():
    alerts = [{"integration": "crm", "summary": f"alert {i}"} for i in range(1_000)]

    assert len(parse_generic(body(alerts))) == 1_000


def test_ten_thousand_generic_alerts_are_refused():
    alerts = [{"integration": "crm", "summary": f"alert {i}"} for i in range(10_000)]

    assert reason("generic", body(alerts)) == (
        "body: at most 1,000 alerts in one request, got 10,000"
    )


# --- Alertmanager and Grafana details ------------------------------------------------------


def test_the_summary_falls_back_to_the_first_line_of_the_description():
    alert = am_alert(annotations={"description": "\nFile missing\nsince 05:00"})

    (event,) = parse_alertmanager(am_body(alert))

    assert event.summary == "File missing"
    assert event.details == "File missing\nsince 05:00"


def test_the_summary_falls_back_to_the_alert_name_and_then_to_a_placeholder():
    named = am_alert(annotations={})
    unnamed = am_alert(annotations={}, labels={"integration": "crm"}, fingerprint="f2")

    first, second = parse_alertmanager(am_body(named, unnamed))

    assert (first.summary, first.details) == ("JobFailed", None)
    assert second.summary == "(no summary)"


def test_the_integration_falls_back_to_the_common_labels_and_else_is_empty():
    alert = am_alert(labels={"alertname": "JobFailed"})

    (grouped,) = parse_alertmanager(am_body(alert, commonLabels={"integration": "HR-Feed"}))
    (ungrouped,) = parse_alertmanager(am_body(alert))

    assert grouped.integration == "hr-feed"
    assert ungrouped.integration == ""


def test_without_a_fingerprint_the_key_is_a_hash_of_the_sorted_labels():
    labels = {"alertname": "JobFailed", "integration": "crm", "instance": "etl01"}
    shuffled = dict(reversed(list(labels.items())))
    other = {**labels, "instance": "etl02"}

    keys = [
        parse_alertmanager(am_body(am_alert(labels=lab, fingerprint=None)))[0].key
        for lab in (labels, shuffled, other)
    ]

    assert keys[0] == keys[1] != keys[2]
    assert keys[0].startswith("labels:")


def test_the_zero_time_means_unknown():
    alert = am_alert(status="resolved", endsAt="0001-01-01T00:00:00Z")

    (event,) = parse_alertmanager(am_body(alert))

    assert event.occurred_at is None


def test_nanosecond_timestamps_are_read():
    (event,) = parse_alertmanager(am_body(am_alert(startsAt="2026-11-26T02:05:13.123456789Z")))

    assert event.occurred_at == datetime(2026, 11, 26, 2, 5, 13, 123456, tzinfo=UTC)


def test_a_grafana_test_notification_without_an_integration_is_still_parsed():
    alert = am_alert(
        labels={"alertname": "TestAlert", "instance": "Grafana"},
        annotations={"summary": "Notification test"},
        values=None,
        valueString="",
    )

    (event,) = parse_grafana(grafana_body(alert))

    assert (event.integration, event.summary, event.details) == ("", "Notification test", None)


# --- malformed input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parser", "raw", "expected"),
    [
        ("generic", b"\xff\xfe{}", "body: not UTF-8 (invalid byte at offset 0)"),
        ("generic", b"", "body: empty; expected JSON"),
        (
            "generic",
            b'{"integration": "crm",\n "summary": }',
            "body: not JSON: Expecting value at line 2, column 13",
        ),
        ("alertmanager", b"{'version': '4'}", "body: not JSON: Expecting property name"),
        ("grafana", b"[" * 100_000, "body: JSON nested too deeply"),
        ("alertmanager", b"1" * 5_000, "body: not usable JSON: a number too long to read"),
        (
            "generic",
            b'"crm is down"',
            "body: must be an alert object or a list of them, got string",
        ),
        ("generic", b"[]", "body: the list of alerts is empty"),
        ("generic", b'[{"integration": "crm", "summary": "s"}, 7]', "[1]: must be an object"),
        ("generic", b'{"summary": "s"}', "integration: required"),
        ("generic", b'{"integration": 12, "summary": "s"}', "integration: must be a string"),
        ("generic", b'{"integration": " ", "summary": "s"}', "integration: must not be empty"),
        (
            "generic",
            b'[{"integration": "crm", "summary": "s", "status": "open"}]',
            '[0].status: must be firing or resolved, got "open"',
        ),
        ("generic", b'{"integration": "crm"}', "summary: required for a firing alert"),
        ("generic", b'{"integration": "crm", "summary": ""}', "summary: must not be empty"),
        (
            "generic",
            b'{"integration": "crm", "status": "resolved"}',
            "summary: required (or key, to resolve an alert)",
        ),
        ("generic", b'{"integration": "crm", "summary": ["a"]}', "summary: must be a string"),
        ("generic", b'{"integration": "crm", "summary": "s", "key": 5}', "key: must be a string"),
        (
            "generic",
            b'{"integration": "crm", "summary": "s", "details": {"a": 1}}',
            "details: must be a string, got object",
        ),
        (
            "generic",
            b'{"integration": "crm", "summary": "s", "severity": 1}',
            "severity: must be a string",
        ),
        (
            "generic",
            b'{"integration": "crm", "summary": "s", "url": true}',
            "url: must be a string",
        ),
        (
            "generic",
            b'{"integration": "crm", "summary": "s", "occurred_at": "yesterday"}',
            'occurred_at: not an ISO 8601 date-time, got "yesterday"',
        ),
        (
            "generic",
            b'{"integration": "crm", "summary": "s", "occurred_at": 1764122700}',
            "occurred_at: must be a string, got number",
        ),
        (
            "generic",
            b'{"integration": "' + b"x" * 201 + b'", "summary": "s"}',
            "integration: at most 200 characters",
        ),
        ("alertmanager", b"[]", "body: must be an Alertmanager webhook object, got array"),
        ("grafana", b"null", "body: must be a Grafana webhook object, got null"),
    ],
)
def test_a_malformed_body_is_refused_with_a_reason(parser, raw, expected):
    assert reason(parser, raw).startswith(expected)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (am_body(version=None), 'version: must be "4" (Alertmanager webhook payload version 4)'),
        (am_body(version="3"), 'version: must be "4" (Alertmanager webhook payload version 4)'),
        (am_body(version=4), 'version: must be "4" (Alertmanager webhook payload version 4), '),
        (
            grafana_body(),
            'version: must be "4" (Alertmanager webhook payload version 4), got "1" '
            "(Grafana sends version 1: use /hooks/grafana)",
        ),
        (am_body(alerts=None), "alerts: required"),
        (am_body(alerts={"0": am_alert()}), "alerts: must be an array, got object"),
        (am_body(alerts=[]), "alerts: the list of alerts is empty"),
        (am_body(alerts=["x"]), "alerts[0]: must be an object, got string"),
        (
            am_body(am_alert(), am_alert(), am_alert(status="pending")),
            'alerts[2].status: must be firing or resolved, got "pending"',
        ),
        (am_body(am_alert(status=None)), "alerts[0].status: required"),
        (am_body(am_alert(labels=["a"])), "alerts[0].labels: must be an object, got array"),
        (
            am_body(am_alert(labels={"integration": "crm", "severity": 2})),
            "alerts[0].labels.severity: must be a string, got number",
        ),
        (
            am_body(am_alert(annotations={"summary": None})),
            "alerts[0].annotations.summary: must be a string, got null",
        ),
        (
            am_body(am_alert(startsAt="26/11/2026 02:05")),
            'alerts[0].startsAt: not an ISO 8601 date-time, got "26/11/2026 02:05"',
        ),
        (am_body(am_alert(fingerprint=123)), "alerts[0].fingerprint: must be a string"),
        (am_body(am_alert(generatorURL=[])), "alerts[0].generatorURL: must be a string"),
        (am_body(commonLabels="crm"), "commonLabels: must be an object, got string"),
        (am_body(truncatedAlerts="0"), "truncatedAlerts: must be a number, got string"),
        (am_body(groupKey=1), "groupKey: must be a string, got number"),
    ],
)
def test_a_malformed_alertmanager_body_is_refused_with_a_reason_naming_the_field(raw, expected):
    assert reason("alertmanager", raw).startswith(expected)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (grafana_body(alerts=None), "alerts: required"),
        (grafana_body(am_alert(values=[1, 2])), "alerts[0].values: must be an object, got array"),
        (
            grafana_body(am_alert(values={"B": "44.2"})),
            "alerts[0].values.B: must be a number, got string",
        ),
        (grafana_body(am_alert(valueString=3)), "alerts[0].valueString: must be a string"),
        (grafana_body(am_alert(panelURL=False)), "alerts[0].panelURL: must be a string"),
        (grafana_body(orgId="1"), "orgId: must be a number, got string"),
        (grafana_body(title=["t"]), "title: must be a string, got array"),
        (
            grafana_body(am_alert(), am_alert(status="alerting")),
            'alerts[1].status: must be firing or resolved, got "alerting"',
        ),
    ],
)
def test_a_malformed_grafana_body_is_refused_with_a_reason_naming_the_field(raw, expected):
    assert reason("grafana", raw).startswith(expected)


def test_a_reason_is_one_short_line_even_when_it_quotes_the_sender():
    alert = am_alert(labels={"line\nbreak\x00" + "x" * 1_000: 1})

    text = reason("alertmanager", am_body(alert))

    assert "\n" not in text and "\x00" not in text
    assert text.startswith("alerts[0].labels.line break ")
    assert len(text) <= 300


def test_an_intake_error_is_a_value_error():
    assert issubclass(IntakeError, ValueError)
