"""`docker stop` gives a process 10 s after SIGTERM before it kills it: the bot must stop in
that time with work in flight, and leave nothing it accepted half done."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, select

from storage.models import Alert, OutboxMessage
from tests.helpers.cli_runner import clean_env, console_script
from tests.helpers.fake_slack import FakeSlack
from tests.helpers.runtime import BOT_TOKEN, EXAMPLE_CATALOG, WEBHOOK_TOKEN
from tests.helpers.slack_signing import SIGNING_SECRET

DOCKER_STOP_GRACE = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert process.poll() is None, "the bot exited before it was healthy"
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered 200")


def test_sigterm_with_a_slack_call_in_flight_stops_within_dockers_grace_and_hands_back_claims(
    tmp_path: Path,
) -> None:
    database = tmp_path / "integ.db"
    port = free_port()
    log_path = tmp_path / "serve.log"
    with FakeSlack() as fake:
        # The alert's post reaches a Slack that takes half a minute to answer.
        fake.delay_next("chat.postMessage", 30.0)
        env = clean_env(
            DATABASE_URL=f"sqlite:///{database}",
            INTEG_CATALOG=str(EXAMPLE_CATALOG),
            INTEG_WEBHOOK_TOKEN=WEBHOOK_TOKEN,
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=fake.url,
            INTEG_TICK_SECONDS="1",
        )
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [console_script(), "serve", "--port", str(port)],
                cwd=tmp_path,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until_healthy(f"http://127.0.0.1:{port}/healthz", process, within=15)
            alert = {"integration": "crm", "summary": "Nightly load failed", "key": "nightly"}
            accepted = httpx.post(
                f"http://127.0.0.1:{port}/hooks/generic",
                content=json.dumps(alert),
                headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
                timeout=5,
            )
            assert accepted.status_code == 202
            time.sleep(1.5)  # the post is on its way to the slow Slack

            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            returncode = process.wait(timeout=30)
            took = time.monotonic() - started
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    logged = log_path.read_text()
    assert took < DOCKER_STOP_GRACE, f"stopped after {took:.1f}s\n{logged}"
    assert returncode == 0, logged
    assert "Traceback" not in logged
    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as conn:
            [stored] = conn.execute(select(Alert.id, Alert.summary)).all()
            rows = conn.execute(
                select(OutboxMessage.status, OutboxMessage.claimed_until).where(
                    OutboxMessage.alert_id == stored.id
                )
            ).all()
    finally:
        engine.dispose()
    assert stored.summary == "Nightly load failed"
    # Handed back: a restart sends it at once (looking first whether Slack got it) instead
    # of waiting for the lease to run out.
    assert rows == [("pending", None)], rows
