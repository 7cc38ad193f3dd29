"""Typed SQLAlchemy models, one module per domain; every model is importable from here.

The catalog file says what exists; these tables say what happened.
"""

from storage.models.alerts import (
    Alert,
    AlertSource,
    AlertStatus,
    AlertTransition,
    ReceivedEvent,
    Silence,
)
from storage.models.audit import AuditEntry
from storage.models.base import NAMING, Base
from storage.models.catalog import CatalogLoad, CatalogSetting, Integration, System
from storage.models.changes import Change, ChangeCategory, ChangeSource
from storage.models.home import HomeIntegration, HomeView
from storage.models.maintenance import CalendarCopy, MaintenanceWindow
from storage.models.monitors import (
    Heartbeat,
    HeartbeatPing,
    HeartbeatStatus,
    NoticeKind,
    Probe,
    StatusPage,
    VendorNotice,
    VendorNoticePost,
)
from storage.models.outages import SystemOutage, SystemOutagePost
from storage.models.outbox import (
    ChannelPace,
    OutboxAttempt,
    OutboxKind,
    OutboxMessage,
    OutboxStatus,
)
from storage.models.reports import MonthlyReport
from storage.models.retention import RetentionRun
from storage.models.reviews import Digest, Review, ReviewNudge, ReviewNudgeStatus
from storage.models.slack import SlackEvent

__all__ = [
    "NAMING",
    "Alert",
    "AlertSource",
    "AlertStatus",
    "AlertTransition",
    "AuditEntry",
    "Base",
    "CalendarCopy",
    "CatalogLoad",
    "CatalogSetting",
    "Change",
    "ChangeCategory",
    "ChangeSource",
    "ChannelPace",
    "Digest",
    "Heartbeat",
    "HeartbeatPing",
    "HeartbeatStatus",
    "HomeIntegration",
    "HomeView",
    "Integration",
    "MaintenanceWindow",
    "MonthlyReport",
    "NoticeKind",
    "OutboxAttempt",
    "OutboxKind",
    "OutboxMessage",
    "OutboxStatus",
    "Probe",
    "ReceivedEvent",
    "RetentionRun",
    "Review",
    "ReviewNudge",
    "ReviewNudgeStatus",
    "Silence",
    "SlackEvent",
    "StatusPage",
    "System",
    "SystemOutage",
    "SystemOutagePost",
    "VendorNotice",
    "VendorNoticePost",
]
