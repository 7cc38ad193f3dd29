"""Alert hook bodies parsed into normalised events: pure functions, no I/O.

Three senders post to the hooks (README, HTTP endpoints): the bot's own generic JSON,
Prometheus Alertmanager (webhook payload version 4) and Grafana unified alerting (the same
shape plus a few fields). Each parser turns one body into `AlertEvent`s or raises
`IntakeError`, whose message is the one-line reason the hook gives in its 400 answer.

Text is kept exactly as sent, emoji, `<!channel>` and all: escaping for Slack mrkdwn happens
when a message is rendered, so the database keeps what the sender said. Only two things are
changed, because storing them would fail later, after the sender was told "accepted": NUL
characters (PostgreSQL refuses them in text) and unpaired UTF-16 surrogates that a JSON
`\\ud800` escape can produce (they cannot be encoded as UTF-8 at all).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from storage.types import storable

SOURCES: Final = ("generic", "alertmanager", "grafana")
STATUSES: Final = ("firing", "resolved")
SEVERITIES: Final = ("critical", "error", "warning", "info")

# Alerts in one request, whichever hook: each becomes rows in the transaction the intake
# writer commits for every request queued with it, so one huge request delays them all.
# Alertmanager truncates a group to this with `max_alerts: 1000` in its webhook_config.
MAX_ALERTS: Final = 1_000
MAX_KEY: Final = 500  # storage: alerts.key is VARCHAR(500)
MAX_INTEGRATION: Final = 200  # storage: alerts.integration_name is VARCHAR(200)
MAX_SUMMARY: Final = 500
MAX_DETAILS: Final = 10_000
# Block Kit refuses a button whose url is longer than this; a link that cannot be shown is
# better dropped here than allowed to make every post of the alert fail.
MAX_URL: Final = 3_000
NO_SUMMARY: Final = "(no summary)"

_ELLIPSIS: Final = "…"
_KEY_HEAD: Final = 450  # 450 + "…" + 40 hex digits = 491, within MAX_KEY
_KEY_HASH: Final = 40
_MAX_REASON: Final = 300

_SEVERITY_SYNONYMS: Final[dict[str, str]] = {
    "critical": "critical",
    "crit": "critical",
    "page": "critical",
    "high": "critical",
    "fatal": "critical",
    "error": "error",
    "err": "error",
    "major": "error",
    "warning": "warning",
    "warn": "warning",
    "minor": "warning",
    "medium": "warning",
    "info": "info",
    "informational": "info",
    "information": "info",
    "low": "info",
    "none": "info",
    "ok": "info",
}
# An unknown severity is treated as an error rather than dropped to info: a sender who
# invented a word for it most likely meant that something is wrong.
DEFAULT_SEVERITY: Final = "error"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class AlertEvent:
    """One alert as received, whichever hook it came through."""

    source: str  # "generic" | "alertmanager" | "grafana"
    integration: str  # as named by the sender, stripped, lowercased; "" when none given
    key: str  # dedupe key within the integration, at most MAX_KEY characters
    status: str  # "firing" | "resolved"
    summary: str  # never empty, at most MAX_SUMMARY characters
    details: str | None  # at most MAX_DETAILS characters
    severity: str  # one of SEVERITIES
    url: str | None  # an http(s) URL, or None
    occurred_at: datetime | None  # timezone-aware UTC
    labels: dict[str, str]


class IntakeError(ValueError):
    """A body the hooks refuse; `str(err)` is the reason, one line, naming the field."""

    def __init__(self, reason: str) -> None:
        # The reason may quote names the sender chose (label keys); keep it one short line
        # so it fits an HTTP answer and a log line.
        line = " ".join(_CONTROL.sub(" ", reason).split())
        super().__init__(_cut(line, _MAX_REASON))


class TooManyAlerts(IntakeError):
    """More than MAX_ALERTS alerts in one body: refused whole, before any is looked at."""

    def __init__(self, where: str, count: int) -> None:
        super().__init__(f"{where}: at most {MAX_ALERTS:,} alerts in one request, got {count:,}")
        self.limit = MAX_ALERTS
        self.count = count


# --- the three parsers ---------------------------------------------------------------------


def parse_generic(body: bytes) -> list[AlertEvent]:
    """The bot's own alert JSON: one object, or a list of 1 to MAX_ALERTS objects."""
    data = _load_json(body)
    if isinstance(data, dict):
        return [_generic_item(data, "")]
    if isinstance(data, list):
        if not data:
            raise IntakeError("body: the list of alerts is empty")
        if len(data) > MAX_ALERTS:
            raise TooManyAlerts("body", len(data))
        events: list[AlertEvent] = []
        for index, item in enumerate(data):
            if not isinstance(item, dict):
                raise IntakeError(f"[{index}]: must be an object, got {_json_type(item)}")
            events.append(_generic_item(item, f"[{index}]"))
        return events
    raise IntakeError(f"body: must be an alert object or a list of them, got {_json_type(data)}")


def parse_alertmanager(body: bytes) -> list[AlertEvent]:
    """Prometheus Alertmanager's webhook payload, version 4."""
    data = _load_json(body)
    if not isinstance(data, dict):
        raise IntakeError(f"body: must be an Alertmanager webhook object, got {_json_type(data)}")
    version = data.get("version")
    if version != "4":
        hint = " (Grafana sends version 1: use /hooks/grafana)" if version == "1" else ""
        raise IntakeError(
            f'version: must be "4" (Alertmanager webhook payload version 4), '
            f"got {_quote(version)}{hint}"
        )
    _check_group(data)
    common = _string_map(data, "commonLabels", "")
    return [
        _alertmanager_alert(alert, where, common, "alertmanager") for alert, where in _alerts(data)
    ]


def parse_grafana(body: bytes) -> list[AlertEvent]:
    """Grafana unified alerting's webhook: Alertmanager's shape plus Grafana's fields."""
    data = _load_json(body)
    if not isinstance(data, dict):
        raise IntakeError(f"body: must be a Grafana webhook object, got {_json_type(data)}")
    # Grafana writes "version": "1"; the field is its own protocol version, not
    # Alertmanager's, so any string is accepted.
    _optional_str(data, "version", "")
    _check_group(data)
    for name in ("title", "state", "message"):
        _optional_str(data, name, "")
    _optional_number(data, "orgId", "")
    common = _string_map(data, "commonLabels", "")
    return [_grafana_alert(alert, where, common) for alert, where in _alerts(data)]


PARSERS: Final[dict[str, Callable[[bytes], list[AlertEvent]]]] = {
    "generic": parse_generic,
    "alertmanager": parse_alertmanager,
    "grafana": parse_grafana,
}


# --- generic -------------------------------------------------------------------------------


def _generic_item(item: dict[str, Any], at: str) -> AlertEvent:
    # Fields other than these are ignored, not refused: senders add their own (a host name,
    # a run id) and an alert must not be lost over an extra field. A known field with the
    # wrong type is refused, though, since it means the sender misunderstood the format.
    raw_integration = _optional_str(item, "integration", at)
    if raw_integration is None:
        raise IntakeError(f"{_path(at, 'integration')}: required")
    integration = _integration(raw_integration, _path(at, "integration"))
    if not integration:
        raise IntakeError(f"{_path(at, 'integration')}: must not be empty")

    status = _status(item, at, default="firing")
    summary = _optional_str(item, "summary", at)
    summary = summary.strip() if summary is not None else None
    key = _optional_str(item, "key", at)
    if key is not None and not key.strip():
        key = None  # an empty key would make every such alert one; take the default
    if not summary:
        if summary is not None:
            raise IntakeError(f"{_path(at, 'summary')}: must not be empty")
        if status == "firing":
            raise IntakeError(f"{_path(at, 'summary')}: required for a firing alert")
        if key is None:
            raise IntakeError(f"{_path(at, 'summary')}: required (or key, to resolve an alert)")

    details = _optional_str(item, "details", at)
    severity = _optional_str(item, "severity", at)
    url = _optional_str(item, "url", at)
    occurred_at = _optional_str(item, "occurred_at", at)
    return AlertEvent(
        source="generic",
        integration=integration,
        key=_limit_key(key if key is not None else summary or ""),
        status=status,
        summary=_cut(summary or NO_SUMMARY, MAX_SUMMARY),
        details=_cut(details, MAX_DETAILS) if details else None,
        severity=normalise_severity(severity),
        url=_http_url(url),
        occurred_at=_parse_time(occurred_at, _path(at, "occurred_at")),
        labels={},
    )


# --- Alertmanager and Grafana --------------------------------------------------------------


def _check_group(data: dict[str, Any]) -> None:
    """Type-check the group fields both senders share; their values are not used."""
    for name in ("groupKey", "status", "receiver", "externalURL"):
        _optional_str(data, name, "")
    _optional_number(data, "truncatedAlerts", "")
    for name in ("groupLabels", "commonLabels", "commonAnnotations"):
        _string_map(data, name, "")


def _alerts(data: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    if "alerts" not in data or data["alerts"] is None:
        raise IntakeError("alerts: required")
    alerts = data["alerts"]
    if not isinstance(alerts, list):
        raise IntakeError(f"alerts: must be an array, got {_json_type(alerts)}")
    if not alerts:
        raise IntakeError("alerts: the list of alerts is empty")
    if len(alerts) > MAX_ALERTS:
        raise TooManyAlerts("alerts", len(alerts))
    checked: list[tuple[dict[str, Any], str]] = []
    for index, alert in enumerate(alerts):
        where = f"alerts[{index}]"
        if not isinstance(alert, dict):
            raise IntakeError(f"{where}: must be an object, got {_json_type(alert)}")
        checked.append((alert, where))
    return checked


def _alertmanager_alert(
    alert: dict[str, Any],
    at: str,
    common_labels: dict[str, str],
    source: str,
    *,
    extra_details: tuple[str, ...] = (),
    url: str | None = None,
) -> AlertEvent:
    if alert.get("status") is None:
        raise IntakeError(f"{_path(at, 'status')}: required")
    status = _status(alert, at, default="firing")
    labels = _string_map(alert, "labels", at)
    annotations = _string_map(alert, "annotations", at)
    starts_at = _parse_time(_optional_str(alert, "startsAt", at), _path(at, "startsAt"))
    ends_at = _parse_time(_optional_str(alert, "endsAt", at), _path(at, "endsAt"))
    generator_url = _optional_str(alert, "generatorURL", at)
    fingerprint = _optional_str(alert, "fingerprint", at)

    if "integration" in labels:
        integration = _integration(labels["integration"], _path(at, "labels.integration"))
    else:
        integration = _integration(common_labels.get("integration", ""), "commonLabels.integration")

    description = annotations.get("description", "").strip()
    summary = (
        annotations.get("summary", "").strip()
        or description.split("\n", 1)[0].strip()
        or labels.get("alertname", "").strip()
        or NO_SUMMARY
    )
    lines = [description] if description else []
    lines += [
        f"{name}: {value}"
        for name, value in annotations.items()
        if name not in ("summary", "description") and value.strip()
    ]
    lines += extra_details
    details = "\n".join(lines)

    key = fingerprint.strip() if fingerprint else ""
    return AlertEvent(
        source=source,
        integration=integration,
        key=_limit_key(key or _labels_key(labels)),
        status=status,
        summary=_cut(summary, MAX_SUMMARY),
        details=_cut(details, MAX_DETAILS) if details else None,
        severity=normalise_severity(labels.get("severity")),
        url=url or _http_url(generator_url),
        # A resolved alert happened when it ended; Alertmanager's zero endsAt means "unknown".
        occurred_at=ends_at if status == "resolved" else starts_at,
        labels=labels,
    )


def _grafana_alert(alert: dict[str, Any], at: str, common_labels: dict[str, str]) -> AlertEvent:
    urls = {
        name: _optional_str(alert, name, at)
        for name in ("panelURL", "dashboardURL", "silenceURL", "imageURL")
    }
    _number_map(alert, "values", at)
    value_string = _optional_str(alert, "valueString", at)
    extra = (f"values: {value_string.strip()}",) if value_string and value_string.strip() else ()
    # Grafana leaves panelURL and dashboardURL empty for a rule not tied to a panel; the
    # panel is the most specific place to look, the rule (generatorURL) the least.
    url = _http_url(urls["panelURL"]) or _http_url(urls["dashboardURL"])
    return _alertmanager_alert(alert, at, common_labels, "grafana", extra_details=extra, url=url)


def _labels_key(labels: dict[str, str]) -> str:
    """A stable key from a label set, for a sender that gave no fingerprint."""
    canonical = json.dumps(sorted(labels.items()), ensure_ascii=False, separators=(",", ":"))
    return "labels:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:_KEY_HASH]


# --- values --------------------------------------------------------------------------------


def normalise_severity(value: str | None) -> str:
    """Map a sender's severity word to one of SEVERITIES; missing or unknown is "error"."""
    if value is None:
        return DEFAULT_SEVERITY
    return _SEVERITY_SYNONYMS.get(value.strip().lower(), DEFAULT_SEVERITY)


def _status(obj: dict[str, Any], at: str, *, default: str) -> str:
    value = _optional_str(obj, "status", at)
    if value is None:
        return default
    status = value.strip().lower()
    if status not in STATUSES:
        raise IntakeError(f"{_path(at, 'status')}: must be firing or resolved, got {_quote(value)}")
    return status


def _integration(value: str, where: str) -> str:
    name = value.strip().lower()
    if len(name) > MAX_INTEGRATION:
        raise IntakeError(f"{where}: at most {MAX_INTEGRATION} characters, got {len(name):,}")
    return name


def _limit_key(key: str) -> str:
    """Keep a key within MAX_KEY while two different long keys stay different."""
    if len(key) <= MAX_KEY:
        return key
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:_KEY_HASH]
    return key[:_KEY_HEAD] + _ELLIPSIS + digest


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + _ELLIPSIS


def _http_url(value: str | None) -> str | None:
    if value is None:
        return None
    url = value.strip()
    if not url or len(url) > MAX_URL or any(c.isspace() or ord(c) < 32 for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced "[" in the host
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def _parse_time(value: str | None, where: str) -> datetime | None:
    """ISO 8601 / RFC 3339 to aware UTC; naive is taken as UTC, Go's zero time as unknown."""
    if value is None or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise IntakeError(
            f"{where}: not an ISO 8601 date-time, got {_quote(value)}; "
            'write e.g. "2026-11-26T02:05:00Z"'
        ) from None
    # Alertmanager and Grafana write "0001-01-01T00:00:00Z" for "not set" (Go's zero time).
    if parsed.replace(tzinfo=None) == datetime.min:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise IntakeError(f"{where}: out of range, got {_quote(value)}") from None


# --- JSON and field access -----------------------------------------------------------------


def _load_json(body: bytes) -> Any:
    try:
        # utf-8-sig: a byte-order mark, as some Windows tools write, is not worth a refusal.
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IntakeError(f"body: not UTF-8 (invalid byte at offset {exc.start})") from None
    if not text.strip():
        raise IntakeError("body: empty; expected JSON")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise IntakeError(
            f"body: not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except RecursionError:
        raise IntakeError("body: JSON nested too deeply") from None
    except ValueError:
        # The one other ValueError json raises: an integer of more than 4,300 digits.
        raise IntakeError("body: not usable JSON: a number too long to read") from None


def _path(at: str, name: str) -> str:
    return f"{at}.{name}" if at else name


def _optional_str(obj: dict[str, Any], name: str, at: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise IntakeError(f"{_path(at, name)}: must be a string, got {_json_type(value)}")
    return storable(value)


def _optional_number(obj: dict[str, Any], name: str, at: str) -> None:
    value = obj.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise IntakeError(f"{_path(at, name)}: must be a number, got {_json_type(value)}")


def _string_map(obj: dict[str, Any], name: str, at: str) -> dict[str, str]:
    value = obj.get(name)
    if value is None:
        return {}
    where = _path(at, name)
    if not isinstance(value, dict):
        raise IntakeError(f"{where}: must be an object, got {_json_type(value)}")
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(item, str):
            raise IntakeError(f"{where}.{key}: must be a string, got {_json_type(item)}")
        result[storable(key)] = storable(item)
    return result


def _number_map(obj: dict[str, Any], name: str, at: str) -> None:
    value = obj.get(name)
    if value is None:
        return
    where = _path(at, name)
    if not isinstance(value, dict):
        raise IntakeError(f"{where}: must be an object, got {_json_type(value)}")
    for key in value:
        _optional_number(value, key, where)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _quote(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(_cut(value, 60), ensure_ascii=False)
    return _json_type(value)
