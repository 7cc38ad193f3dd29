"""The bot with its SMTP listener on a free loopback port, a catalog with e-mail rules, and
the fake Slack Web API: what the e-mail tests send to with Python's smtplib."""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.runtime import Runtime
from tests.helpers.fake_slack import FakeSlack
from tests.helpers.runtime import BOT_TOKEN, EXAMPLE_CATALOG, make_settings
from tests.helpers.slack_signing import SIGNING_SECRET

DOMAIN = "integ.example.edu"
MAIL = Path(__file__).resolve().parents[1] / "data" / "mail"
JOBSUB = {
    "id": "banner-jobsub",
    "name": "Banner job submission: admissions load",
    "source": "banner",
    "target": "slate",
    "mechanism": "flat-file",
    "schedule": "0 2 * * *",
    "owner": "U0OWNER01",
    "channel": "C0JOBSUB1",
    "email": {
        "from": ["jobsub@banner.example.edu", "@slate.example.org", "@vendor.example.com"],
        "fail_when": {"subject": "(?i)error|failed", "body": "rejected: [1-9]"},
        "success_when": {"subject": "(?i)completed"},
        "otherwise": "fail",
    },
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mail_catalog(path: Path, **changes: Any) -> Path:
    """The bundled catalog with an integration whose jobs report by e-mail."""
    data = yaml.safe_load(EXAMPLE_CATALOG.read_text())
    data["integrations"].append({**JOBSUB, **changes})
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass
class Mailer:
    runtime: Runtime
    port: int

    def send(self, raw: bytes, to: str, sender: str = "jobsub@banner.example.edu") -> None:
        """Send as a relay would; raises smtplib's errors for what the listener refuses."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
            client.sendmail(sender, [to], raw)

    def deliver(self) -> None:
        """Send what was queued for Slack, letting the injected clock past the pace."""
        from datetime import timedelta

        for _ in range(4):
            self.runtime.outbox.run_once()
            self.runtime.deps.clock.now += timedelta(seconds=2.1)


def with_message_id(raw: bytes, message_id: str) -> bytes:
    """The message with its Message-ID replaced: the same report, sent again as a new one."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"message-id:")]
    return b"\r\n".join([*lines, f"Message-ID: <{message_id}>".encode()]) + b"\r\n\r\n" + body


def fixture(name: str) -> bytes:
    return (MAIL / name).read_bytes()


@pytest.fixture
def start_mailer(
    database_url: str, fake_slack: FakeSlack, make_runtime: Callable[..., Runtime], tmp_path: Path
) -> Iterator[Callable[..., Mailer]]:
    started: list[Runtime] = []

    def start(**env: str) -> Mailer:
        port = free_port()
        settings = make_settings(
            database_url,
            catalog=mail_catalog(tmp_path / "catalog.yml"),
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=fake_slack.url,
            INTEG_SMTP_PORT=str(port),
            INTEG_MAIL_DOMAIN=DOMAIN,
            **env,
        )
        runtime = make_runtime(settings)
        assert runtime.mail is not None
        runtime.mail.start()
        started.append(runtime)
        return Mailer(runtime, port)

    yield start
    for runtime in started:
        if runtime.mail is not None:
            runtime.mail.stop()


@pytest.fixture
def mailer(start_mailer: Callable[..., Mailer]) -> Mailer:
    return start_mailer()
