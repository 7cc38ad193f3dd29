"""Making the rows the retention duty deals with through the paths that make them in
production: pings as `/ping/<key>` stores them, hook requests as the intake writer stores
them, and sends by the outbox worker."""

from __future__ import annotations

import json
from datetime import timedelta

from bot.runtime import Runtime
from commands.alerts.ingest import Received, receive
from commands.alerts.payloads import parse_generic
from commands.monitors.heartbeats import record_ping
from storage.db import transaction
from tests.helpers.runtime import FixedClock

CRM_HEARTBEAT = "3f6c0d2e-crm-nightly"  # the heartbeat key of "crm" in examples/catalog.yml


def ping(runtime: Runtime) -> None:
    """A success ping from the crm job, stored as `/ping/<key>` stores it."""
    with transaction(runtime.deps.sessions) as session:
        stored = record_ping(
            session,
            CRM_HEARTBEAT,
            "success",
            now=runtime.deps.clock(),
            method="GET",
            user_agent="curl/8.5.0",
            remote_addr="10.0.0.5",
            body=None,
        )
    assert stored is not None


def hook(runtime: Runtime, key: str, status: str = "firing") -> None:
    """A generic hook request for crm, stored as the intake writer stores it."""
    body = json.dumps(
        {"integration": "crm", "summary": f"Load failed: {key}", "key": key, "status": status}
    ).encode()
    with transaction(runtime.deps.sessions) as session:
        receive(
            session, [Received("generic", body, parse_generic(body))], runtime.deps.clock(), None
        )


def send_all(runtime: Runtime, clock: FixedClock) -> None:
    """Let the outbox worker send all it can, moving the clock past each channel's pace
    (1.1 s after the last write) between passes."""
    assert runtime.outbox is not None
    idle = 0
    for _ in range(100):
        idle = idle + 1 if runtime.outbox.run_once() == 0 else 0
        if idle == 2:
            return
        clock.now += timedelta(seconds=2)
    raise AssertionError("the outbox kept sending for 100 passes")
