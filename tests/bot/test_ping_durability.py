"""A ping answered 200 survives a SIGKILL: pings are group-committed with the hooks, and each
200 is sent only after the commit that holds it. A real `integ-bot serve` is killed while
jobs ping it from several threads, then restarted on the same database."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import func, select

from storage.models import HeartbeatPing
from tests.bot.test_durability import bots, database, wait_healthy
from tests.helpers.fake_slack import FakeSlack

HEARTBEATS = 20
SENDERS = 4


def write_catalog(path: Path) -> list[str]:
    """Integrations with a heartbeat each (every hour, so no run is missed while the test
    runs) and nothing else scheduled; their keys."""
    keys = [f"durable-ping-{i:02d}" for i in range(HEARTBEATS)]
    lines = [
        "systems:",
        "  - {id: job-server, name: Job server}",
        "  - {id: erp, name: ERP}",
        "integrations:",
    ]
    for i, key in enumerate(keys):
        lines.append(
            f"  - {{id: job-{i:02d}, name: Job {i:02d}, source: job-server, target: erp,"
            f" mechanism: flat-file, schedule: realtime, owner: U0OWNER01, channel: C0JOB{i:04d},"
            f" heartbeat: {{key: {key}, every: 1h, grace: 10m}}}}"
        )
    path.write_text("\n".join(lines) + "\n")
    return keys


def stored_pings(url: str) -> Counter[str]:
    with database(url) as session:
        rows = session.execute(
            select(HeartbeatPing.integration_id, func.count()).group_by(
                HeartbeatPing.integration_id
            )
        )
        return Counter({integration: int(n) for integration, n in rows})


def test_every_ping_answered_200_survives_a_sigkill(database_url: str, tmp_path: Path) -> None:
    keys = write_catalog(tmp_path / "catalog.yml")
    answered: Counter[str] = Counter()  # 200s per integration
    lock = threading.Lock()
    stop = threading.Event()

    with (
        FakeSlack() as fake,
        bots(tmp_path, fake, database_url, tmp_path / "catalog.yml") as started,
    ):
        first = started.start("first")
        wait_healthy(first)

        def sender(n: int) -> None:
            with httpx.Client(timeout=10) as client:
                i = n
                while not stop.is_set():
                    key = keys[i % HEARTBEATS]
                    i += SENDERS
                    try:
                        answer = client.get(f"{first.url}/ping/{key}")
                    except httpx.TransportError:
                        time.sleep(0.02)
                        continue
                    if answer.status_code == 200:
                        with lock:
                            answered[f"job-{keys.index(key):02d}"] += 1

        threads = [threading.Thread(target=sender, args=(n,), daemon=True) for n in range(SENDERS)]
        for thread in threads:
            thread.start()
        try:
            deadline = time.monotonic() + 20
            while sum(answered.values()) < 300 and time.monotonic() < deadline:
                time.sleep(0.02)
            os.kill(first.process.pid, signal.SIGKILL)
            first.process.wait(timeout=10)
            time.sleep(0.3)  # the senders meet the dead bot: the kill was mid-stream
        finally:
            stop.set()
            for thread in threads:
                thread.join(10)

        assert sum(answered.values()) >= 300, started.logs()
        stored = stored_pings(database_url)
        # Every 200 is stored. A ping stored whose answer the kill cut off is allowed: its
        # job saw no 200 and sends it again. At most one per sender was in flight.
        assert all(stored[i] >= n for i, n in answered.items()), (answered, stored)
        assert 0 <= sum(stored.values()) - sum(answered.values()) <= SENDERS

        # The restarted bot takes pings at once, and they count.
        second = started.start("second")
        wait_healthy(second)
        after = httpx.get(f"{second.url}/ping/{keys[0]}", timeout=10)
        assert (after.status_code, after.text) == (200, "OK\n")
        assert stored_pings(database_url)["job-00"] == stored["job-00"] + 1
