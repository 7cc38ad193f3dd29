"""Alerts: one row per (integration, key), an immutable row per state change, silences,
and the raw hook bodies they came from."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base


class AlertStatus(enum.StrEnum):
    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class AlertSource(enum.StrEnum):
    """Where an alert came from: a hook's sender, or the bot's own monitors."""

    GENERIC = "generic"
    ALERTMANAGER = "alertmanager"
    GRAFANA = "grafana"
    HEARTBEAT = "heartbeat"
    PROBE = "probe"
    EMAIL = "email"


class Alert(Base):
    """One failure of one integration, identified by (integration, key)."""

    __tablename__ = "alerts"
    __table_args__ = (
        # `/integ status` asks "is anything open for this integration"; this index answers
        # it without scanning the resolved history, which grows without bound.
        Index("ix_alerts_integration_status", "integration_name", "status"),
        # The tick looks at open alerts only (escalations, silences that ended); resolved
        # ones pile up for ever, so it finds the open ones through this index.
        Index("ix_alerts_status", "status"),
        # One row per (integration, key) for ever: repeats count up, a resolved alert that
        # fires again reopens the same row. The constraint is what stops two processes
        # from creating it twice.
        UniqueConstraint("integration_name", "key", name="uq_alerts_integration_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The name as received; an alert for an unknown integration is kept all the same.
    integration_name: Mapped[str] = mapped_column(String(200))
    integration_id: Mapped[str | None] = mapped_column(ForeignKey("integrations.id"))
    key: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20), default=AlertStatus.FIRING)
    severity: Mapped[str] = mapped_column(String(20), default="error")
    summary: Mapped[str] = mapped_column(Text)
    details: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(20), default="generic")
    count: Mapped[int] = mapped_column(default=1)
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    root_cause: Mapped[str | None] = mapped_column(String(40))
    root_cause_note: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(String(64))
    message_ts: Mapped[str | None] = mapped_column(String(32))
    labels: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    escalated_at: Mapped[datetime | None]
    # When it last went to firing, and when its message was last queued to be posted (a
    # silence can hold that back for hours): escalation counts from the later of the two.
    # Kept on the row rather than worked out from alert_transitions and the outbox, so the
    # tick reads no history and the retention duty may prune the outbox.
    fired_at: Mapped[datetime | None]
    shown_at: Mapped[datetime | None]
    # The system outage it is folded under (commands/outages): not posted nor escalated on
    # its own while that outage is open.
    outage_id: Mapped[int | None] = mapped_column(ForeignKey("system_outages.id"), index=True)


class AlertTransition(Base):
    """An immutable record of one alert state change: who, when, from, to, why."""

    __tablename__ = "alert_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    at: Mapped[datetime]
    actor: Mapped[str | None] = mapped_column(String(64))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)


class Silence(Base):
    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(64))
    # "silence" (`/integ silence`), or "maintenance": the window `window_id` holds its alerts
    # back. `/integ silence` and `unsilence` replace and end silences only.
    kind: Mapped[str] = mapped_column(String(12), default="silence", server_default="silence")
    window_id: Mapped[int | None] = mapped_column(ForeignKey("maintenance_windows.id"))


class ReceivedEvent(Base):
    """Every hook request as received, committed before the 202: the promise that nothing
    acknowledged to a sender is ever lost, and the record to replay from."""

    __tablename__ = "received_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Indexed for the retention duty, which deletes bodies older than a setting.
    received_at: Mapped[datetime] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(String(20))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    alerts: Mapped[int] = mapped_column(default=0)
