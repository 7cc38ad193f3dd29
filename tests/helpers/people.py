"""The people of the permission tests: one of each kind, in a catalog that names a team and
admins, and the requests they send as Slack sends them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from storage.models import Alert
from tests.helpers.fake_slack import FakeSlack
from tests.helpers.runtime import EXAMPLE_CATALOG, WEBHOOK_TOKEN, RunningServer
from tests.helpers.slack_signing import (
    interactive_body,
    load_payload,
    signed_headers,
    slash_command_body,
)

ROLES = {
    "owner": "U0OWNER01",
    "backup": "U0BACKUP1",
    "team member": "U0TEAM001",
    "admin": "U0ADMIN01",
    "other member": "U0OTHER01",
    "guest": "U0GUEST01",
    "external": "U0EXTERN1",
}
TEAM = "S0CRMTEAM"
CHANNEL = "C0INTEG01"
DUE_DAY = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # crm's first review is due


def permissions_catalog(tmp_path: Path) -> Path:
    """The example catalog, with admins and a team for crm."""
    text = EXAMPLE_CATALOG.read_text(encoding="utf-8")
    crm_owner = "    owner: U0OWNER01\n"
    assert crm_owner in text
    text = text.replace(crm_owner, crm_owner + f"    team: {TEAM}\n", 1)
    path = tmp_path / "catalog.yml"
    path.write_text("admins: [U0ADMIN01]\n" + text, encoding="utf-8")
    return path


# -- talking to the bot as Slack does ---------------------------------------------------------


def post(server: RunningServer, body: str) -> dict[str, Any]:
    with server.client() as client:
        response = client.post("/slack/events", content=body, headers=signed_headers(body))
    assert response.status_code == 200, response.text
    return response.json() if response.content else {}


def command(server: RunningServer, text: str, user: str, channel: str = CHANNEL) -> str:
    """What `user` is shown after typing `/integ <text>` in `channel`, as JSON text."""
    answer = post(server, slash_command_body(text, user_id=user, channel_id=channel))
    return json.dumps(answer.get("blocks") or answer.get("text"))


def click(
    server: RunningServer, fake: FakeSlack, user: str, action_id: str, value: str, **extra: Any
) -> str:
    """Click a button of a message in the integration's channel; what the clicker is told
    (ephemerally, through the response URL)."""
    name = f"click-{user}-{action_id}-{value}"
    payload = load_payload("block_actions")
    payload["user"]["id"] = user
    payload["response_url"] = fake.response_url(name)
    payload["container"].update(message_ts="1700000000.000100", channel_id=CHANNEL)
    payload["channel"]["id"] = CHANNEL
    payload["actions"][0].update(action_id=action_id, value=value, block_id="b", **extra)
    post(server, interactive_body(payload))
    return " ".join(str(call.args.get("text")) for call in fake.responses_to(name))


def submit(server: RunningServer, user: str, view: dict[str, Any], values: dict[str, Any]) -> str:
    payload = load_payload("view_submission")
    payload["user"]["id"] = user
    payload["view"].update(
        callback_id=view["callback_id"],
        private_metadata=view.get("private_metadata", ""),
        blocks=view.get("blocks", []),
    )
    payload["view"]["state"]["values"] = values
    return json.dumps(post(server, interactive_body(payload)))


def deliver(server: RunningServer) -> None:
    clock = server.runtime.deps.clock
    assert server.runtime.outbox is not None
    for _ in range(6):
        server.runtime.outbox.run_once()
        clock.now += timedelta(seconds=1.1)


def fire(server: RunningServer, key: str) -> int:
    alert = {"integration": "crm", "summary": "Nightly load failed", "key": key}
    with server.client() as client:
        response = client.post(
            "/hooks/generic",
            content=json.dumps(alert),
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
        )
    assert response.status_code == 202, response.text
    deliver(server)
    with server.runtime.deps.sessions() as session:
        return session.scalars(select(Alert.id).where(Alert.key == key)).one()
