"""Socket Mode end to end: the real `integ-bot serve` in a subprocess, with a bot token, an
app-level token and no signing secret, talking to the fake Slack Web API (which hands out the
WebSocket URL) and to the fake Socket Mode server (tests/helpers/fake_socket_mode.py), which
sends envelopes and records the acknowledgements."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session

from bot import wire_ids
from storage.models import Alert, Change
from tests.helpers.cli_runner import clean_env, console_script
from tests.helpers.fake_slack import FakeSlack
from tests.helpers.fake_socket_mode import Ack, Connection, FakeSocketMode
from tests.helpers.runtime import BOT_TOKEN, EXAMPLE_CATALOG, WEBHOOK_TOKEN
from tests.helpers.slack_signing import load_payload, slash_command_fields

APP_TOKEN = "xapp-1-A111-1-socketmodetest"
CRM_CHANNEL = "C0INTEG01"
SLACK_DEADLINE = 3.0  # seconds Slack waits for an envelope's acknowledgement


@dataclass
class Bot:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    slack: FakeSlack
    sockets: FakeSocketMode
    engine: Engine

    def logged(self) -> str:
        return self.log_path.read_text()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_bot(cwd: Path, database: Path, slack: FakeSlack, sockets: FakeSocketMode) -> Bot:
    port = free_port()
    env = clean_env(
        DATABASE_URL=f"sqlite:///{database}",
        INTEG_CATALOG=str(EXAMPLE_CATALOG),
        INTEG_WEBHOOK_TOKEN=WEBHOOK_TOKEN,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_APP_TOKEN=APP_TOKEN,
        SLACK_API_URL=slack.url,
        # The scheduler's first tick, probe and status-page poll come after this long: none
        # of them in these tests (the example catalog's status pages are on the internet).
        INTEG_TICK_SECONDS="3600",
    )
    log_path = cwd / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [console_script(), "serve", "--port", str(port)],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    engine = create_engine(f"sqlite:///{database}")
    return Bot(process, f"http://127.0.0.1:{port}", log_path, slack, sockets, engine)


def stop_bot(bot: Bot) -> int:
    """SIGTERM, as `docker stop` sends; the exit code."""
    bot.engine.dispose()
    bot.process.terminate()
    try:
        return bot.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        bot.process.kill()
        bot.process.wait()
        raise


def wait_until(bot: Bot, done: Callable[[], Any], what: str, within: float = 10.0) -> Any:
    """Poll `done` until it answers something true; fail at once if the bot exited."""
    deadline = time.monotonic() + within
    while True:
        answer = done()
        if answer:
            return answer
        if bot.process.poll() is not None:
            raise AssertionError(
                f"integ-bot serve exited with {bot.process.returncode}:\n" + bot.logged()
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {within} s; log:\n{bot.logged()}")
        time.sleep(0.02)


def health(bot: Bot) -> httpx.Response | None:
    try:
        return httpx.get(f"{bot.url}/healthz", timeout=1)
    except httpx.TransportError:
        return None


def connected(bot: Bot, count: int = 1, within: float = 10.0) -> None:
    """Wait for the `count`th connection to be open and greeted."""
    wait_until(
        bot,
        lambda: (
            len([c for c in bot.sockets.connections if c.hello]) >= count
            and bot.sockets.connections[-1].open
        ),
        f"Socket Mode connection #{count}",
        within,
    )


def acked(bot: Bot, envelope_id: str) -> Ack:
    return wait_until(
        bot,
        lambda: next((a for a in bot.sockets.acks if a.envelope_id == envelope_id), None),
        f"the acknowledgement of envelope {envelope_id}",
    )


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: Path) -> Iterator[Bot]:
    """One bot for the tests that only send it envelopes or end its connections: starting
    and stopping one takes seconds."""
    cwd = tmp_path_factory.mktemp("socket-mode")
    database = cwd / "integ.db"
    shutil.copyfile(migrated_sqlite, database)
    with FakeSlack() as slack, FakeSocketMode() as sockets:
        sockets.attach(slack)
        running = start_bot(cwd, database, slack, sockets)
        try:
            connected(running)
            wait_until(running, lambda: health(running), "/healthz answering")
            yield running
        finally:
            returncode = stop_bot(running)
        logged = running.logged()
        assert returncode == 0, logged
        assert "Traceback" not in logged


def slash_command(bot: Bot, text: str, user_id: str = "U0OWNER01") -> dict[str, str]:
    """A slash command's payload as Socket Mode carries it: the form fields, as JSON."""
    return slash_command_fields(
        text,
        user_id=user_id,
        channel_id=CRM_CHANNEL,
        team_id=bot.slack.team_id,
        api_app_id=bot.sockets.app_id,
        response_url=bot.slack.response_url("slash"),
    )


def alert_with_key(bot: Bot, key: str) -> Alert:
    with Session(bot.engine) as session:
        alert = session.scalars(select(Alert).where(Alert.key == key)).one()
        session.expunge(alert)
        return alert


def fire(bot: Bot, key: str) -> Alert:
    """An alert for crm, through the generic hook, as a monitoring system sends it."""
    body = {"integration": "crm", "summary": "Nightly load failed", "key": key}
    response = httpx.post(
        f"{bot.url}/hooks/generic",
        content=json.dumps(body),
        headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    return alert_with_key(bot, key)


def acknowledge_click(bot: Bot, alert: Alert, user_id: str, answer_to: str) -> dict[str, Any]:
    """The Acknowledge button on the alert's message, clicked by `user_id`: Slack's recorded
    block_actions payload, adapted."""
    payload = load_payload("block_actions")
    payload["user"] = {
        "id": user_id,
        "username": user_id.lower(),
        "name": user_id.lower(),
        "team_id": bot.slack.team_id,
    }
    payload["team"] = {"id": bot.slack.team_id, "domain": bot.slack.team_domain}
    payload["api_app_id"] = bot.sockets.app_id
    message_ts = alert.message_ts or "1700000000.000100"
    payload["container"] = {
        "type": "message",
        "message_ts": message_ts,
        "channel_id": CRM_CHANNEL,
        "is_ephemeral": False,
    }
    payload["channel"] = {"id": CRM_CHANNEL, "name": "crm-alerts"}
    payload["response_url"] = bot.slack.response_url(answer_to)
    payload["actions"] = [
        {
            "action_id": wire_ids.ACK_ACTION,
            "block_id": "alert-actions",
            "text": {"type": "plain_text", "text": "Acknowledge", "emoji": True},
            "value": str(alert.id),
            "type": "button",
            "action_ts": "1764581400.000100",
        }
    ]
    return payload


def memo_reaction(bot: Bot, message_ts: str, event_id: str, user_id: str) -> dict[str, Any]:
    """:memo: on a message in crm's channel: Slack's recorded reaction_added event, adapted."""
    payload = load_payload("event_reaction_added")
    payload.pop("enterprise_id", None)
    payload["team_id"] = bot.slack.team_id
    payload["api_app_id"] = bot.sockets.app_id
    payload["event_id"] = event_id
    payload["event"].update(
        user=user_id,
        reaction="memo",
        item={"type": "message", "channel": CRM_CHANNEL, "ts": message_ts},
        item_user="U0OWNER01",
    )
    return payload


# -- connecting ---------------------------------------------------------------------------------


def test_serve_opens_socket_mode_with_the_app_token_and_is_greeted(bot):
    [opened, *_] = bot.slack.calls_to("apps.connections.open")
    # The app-level token, in the header as Slack wants it; never the bot token.
    assert opened.headers["authorization"] == f"Bearer {APP_TOKEN}"
    assert opened.ok and opened.response["url"].startswith("ws://")
    first = bot.sockets.connections[0]
    assert first.ticket in opened.response["url"]
    assert first.hello is not None and first.hello["connection_info"]["app_id"] == "A111"
    assert first.errors == []  # every frame from the app was masked, every message JSON
    assert first.pings >= 1  # the client pings at once to measure the connection
    answer = health(bot)
    assert answer is not None and answer.json()["mode"] == "socket"
    # No signing secret: Slack's HTTP requests are refused, Socket Mode carries them.
    assert httpx.post(f"{bot.url}/slack/events", content=b"{}", timeout=5).status_code == 503


def test_the_fake_hands_a_socket_url_only_to_an_app_token_in_the_header(fakes):
    slack, sockets = fakes
    app = WebClient(base_url=slack.url)
    assert app.apps_connections_open(app_token=APP_TOKEN)["url"].startswith("ws://127.0.0.1:")
    for token, error in ((BOT_TOKEN, "not_allowed_token_type"), ("nonsense", "invalid_auth")):
        with pytest.raises(SlackApiError) as refused:
            app.apps_connections_open(app_token=token)
        assert refused.value.response["error"] == error
    # Slack's documentation: the token must come in the Authorization header.
    in_body = httpx.post(f"{slack.url}apps.connections.open", data={"token": APP_TOKEN})
    assert in_body.json() == {"ok": False, "error": "invalid_auth"}


# -- the three kinds of envelope ----------------------------------------------------------------


def test_a_slash_command_is_acknowledged_with_the_answer_within_3_seconds(bot):
    envelope_id = bot.sockets.send_envelope("slash_commands", slash_command(bot, "status crm"))
    ack = acked(bot, envelope_id)
    assert ack.seconds < SLACK_DEADLINE
    assert ack.payload is not None
    assert ack.payload["response_type"] == "ephemeral"
    assert ack.payload["text"].startswith("Slate to Banner admissions (crm)")
    assert any(
        "Slate CRM → Ellucian Banner" in json.dumps(b, ensure_ascii=False)
        for b in ack.payload["blocks"]
    )


def test_an_acknowledge_click_is_acknowledged_and_the_alert_is_acknowledged(bot):
    alert = fire(bot, "socket-mode-ack")
    assert alert.status == "firing"
    payload = acknowledge_click(bot, alert, "U0SOCKET1", answer_to="ack-member")
    envelope_id = bot.sockets.send_envelope("interactive", payload)
    ack = acked(bot, envelope_id)
    assert ack.seconds < SLACK_DEADLINE
    assert ack.payload is None  # a click is acknowledged with nothing to show
    after = alert_with_key(bot, "socket-mode-ack")
    assert (after.status, after.acknowledged_by) == ("acknowledged", "U0SOCKET1")
    assert bot.slack.responses_to("ack-member") == []  # the channel sees the updated message


def test_a_guest_clicking_acknowledge_is_told_why_and_nothing_changes(bot):
    alert = fire(bot, "socket-mode-guest")
    bot.slack.guest("U0SOCKETG")
    payload = acknowledge_click(bot, alert, "U0SOCKETG", answer_to="ack-guest")
    ack = acked(bot, bot.sockets.send_envelope("interactive", payload))
    assert ack.seconds < SLACK_DEADLINE
    [refusal] = bot.slack.wait_for("response:ack-guest")
    assert refusal.args["response_type"] == "ephemeral"
    assert refusal.args["replace_original"] is False
    assert "for full members of this workspace" in refusal.args["text"]
    assert alert_with_key(bot, "socket-mode-guest").status == "firing"


def test_a_memo_reaction_event_is_acknowledged_and_logs_the_change_once(bot):
    message = bot.slack.add_message(
        CRM_CHANNEL, "Rotated the SFTP key of the nightly drop", user="U0OWNER01"
    )
    payload = memo_reaction(bot, message["ts"], "Ev0SOCKETMEMO", user_id="U0OWNER01")
    ack = acked(bot, bot.sockets.send_envelope("events_api", payload))
    assert ack.seconds < SLACK_DEADLINE
    assert ack.payload is None

    def logged() -> list[tuple[str, str, str]]:
        with Session(bot.engine) as session:
            rows = session.scalars(select(Change).where(Change.message_ts == message["ts"]))
            return [(c.integration_id, c.source, c.summary) for c in rows]

    wait_until(bot, logged, "the change logged from the reaction")
    # Slack delivers an event again when it thinks the acknowledgement came too late.
    again = bot.sockets.send_envelope(
        "events_api", payload, retry_attempt=1, retry_reason="timeout"
    )
    assert acked(bot, again).seconds < SLACK_DEADLINE
    assert logged() == [("crm", "reaction", "Rotated the SFTP key of the nightly drop")]


# -- reconnecting -------------------------------------------------------------------------------


def test_after_slack_asks_for_a_refresh_the_bot_reconnects_and_handles_the_next_envelope(bot):
    old = bot.sockets.open_connections[-1]
    known = len(bot.sockets.connections)
    opened = len(bot.slack.calls_to("apps.connections.open"))
    bot.sockets.send_disconnect("refresh_requested")
    connected(bot, known + 1)
    new = bot.sockets.connections[-1]
    # A new URL from apps.connections.open for the new connection, as Slack requires.
    assert len(bot.slack.calls_to("apps.connections.open")) == opened + 1
    assert new.ticket != old.ticket and new.hello is not None
    # Slack then closes the old connection; the envelopes come on the new one.
    bot.sockets.close(old)
    envelope_id = bot.sockets.send_envelope("slash_commands", slash_command(bot, "status crm"))
    ack = acked(bot, envelope_id)
    assert ack.connection == new.index
    assert ack.seconds < SLACK_DEADLINE
    assert ack.payload is not None and "crm" in ack.payload["text"]
    assert new.errors == []
    # No reconnecting storm: one more connection, one more URL.
    assert len(bot.slack.calls_to("apps.connections.open")) == opened + 1
    assert len(bot.sockets.connections) == known + 1


def test_an_envelope_right_after_a_refresh_is_acknowledged_within_3_seconds(bot):
    old = bot.sockets.open_connections[-1]
    known = len(bot.sockets.connections)
    bot.sockets.send_disconnect("refresh_requested")
    connected(bot, known + 1)
    new = bot.sockets.connections[-1]
    # At once, on the new connection's hello: the bot must be reading it already.
    envelope_id = bot.sockets.send_envelope("slash_commands", slash_command(bot, "status crm"))
    ack = acked(bot, envelope_id)
    assert ack.connection == new.index
    assert ack.seconds < SLACK_DEADLINE
    # The bot closed the old connection itself, the orderly way, instead of leaving it open.
    bot.sockets.wait_for_closed(old)
    assert (old.closed_by, old.close_code) == ("client", 1000)


def cpu_seconds(bot: Bot) -> float:
    """The CPU time the bot's process has used so far, user and system."""
    times = psutil.Process(bot.process.pid).cpu_times()
    return times.user + times.system


@dataclass
class Replaced:
    new: Connection
    seconds: float  # from the end of the old connection to the new one's hello
    cpu_seconds: float  # what the bot's process used meanwhile
    handled: float  # from the end of the old connection to the next envelope's ack

    def idle(self) -> bool:
        """Whether the bot waited without spinning: a client that reads a dead socket again
        and again keeps a whole core busy; the bot's own workers use a few percent of one,
        and reconnecting a few hundredths of a second."""
        return self.cpu_seconds < 0.2 + 0.25 * self.seconds


def replace_connection(bot: Bot, end: Callable[[Connection], object], within: float) -> Replaced:
    """End the bot's connection with `end` (no disconnect message first) and wait for the
    next one; then check that it carries a slash command, and that it took one new URL and
    one new connection: no reconnecting storm."""
    old = bot.sockets.open_connections[-1]
    known = len(bot.sockets.connections)
    opened = len(bot.slack.calls_to("apps.connections.open"))
    cpu_before, started = cpu_seconds(bot), time.monotonic()
    end(old)
    connected(bot, known + 1, within)
    new, seconds, cpu = bot.sockets.connections[-1], time.monotonic() - started, cpu_seconds(bot)
    envelope_id = bot.sockets.send_envelope("slash_commands", slash_command(bot, "status crm"))
    ack = acked(bot, envelope_id)
    replaced = Replaced(new, seconds, cpu - cpu_before, time.monotonic() - started)
    assert ack.connection == new.index
    assert ack.seconds < SLACK_DEADLINE
    assert ack.payload is not None and "crm" in ack.payload["text"]
    assert replaced.new.ticket != old.ticket and replaced.new.errors == []
    assert len(bot.slack.calls_to("apps.connections.open")) == opened + 1
    assert len(bot.sockets.connections) == known + 1
    return replaced


def test_a_connection_slack_closes_without_a_disconnect_message_is_replaced_at_once(bot):
    # A close frame with no disconnect message first: a Slack server going away.
    replaced = replace_connection(bot, lambda old: bot.sockets.close(old, code=1001), within=5)
    assert replaced.seconds < 3  # when the close frame comes, not at the next ping (5 s)
    assert replaced.handled < 5
    assert replaced.idle()


def test_a_connection_that_ends_without_a_close_frame_is_replaced_at_once_without_spinning(bot):
    # The socket ends (FIN) with no close frame: a proxy or load balancer on the way restarting.
    # A client that reads the ended socket again and again would keep a core busy meanwhile.
    replaced = replace_connection(bot, bot.sockets.drop, within=5)
    assert replaced.seconds < 3  # when the socket ends, not at the next ping (5 s)
    assert replaced.handled < 5
    assert replaced.idle()


def test_a_connection_that_dies_without_a_trace_is_replaced_after_its_ping_goes_unanswered(bot):
    # No close frame, no end of stream: a NAT or firewall forgot the connection, or a network
    # path died. Only the missing pong tells: the bot pings every SOCKET_MODE_PING_INTERVAL
    # (5 s) and gives up on a connection whose pong is SOCKET_MODE_PONG_TIMEOUT (2 s) late.
    replaced = replace_connection(bot, bot.sockets.silence, within=15)
    assert replaced.handled < 15
    assert replaced.idle()  # waiting for the pong, not spinning


# -- starting while Slack refuses or is down ----------------------------------------------------


@pytest.fixture
def fakes() -> Iterator[tuple[FakeSlack, FakeSocketMode]]:
    with FakeSlack() as slack, FakeSocketMode() as sockets:
        sockets.attach(slack)
        yield slack, sockets


@pytest.fixture
def bot_files(tmp_path: Path, migrated_sqlite: Path) -> tuple[Path, Path]:
    database = tmp_path / "integ.db"
    shutil.copyfile(migrated_sqlite, database)
    return tmp_path, database


def test_an_app_token_slack_refuses_stops_start_up_with_one_line(fakes, bot_files):
    slack, sockets = fakes
    slack.fail_next("apps.connections.open", error="invalid_auth")
    bot = start_bot(*bot_files, slack, sockets)
    try:
        returncode = bot.process.wait(timeout=20)
    finally:
        bot.engine.dispose()
    logged = bot.logged()
    assert returncode == 2, logged
    assert "integ-bot: SLACK_APP_TOKEN: Slack refused the token (invalid_auth)" in logged
    assert "Traceback" not in logged
    assert sockets.connections == []


def test_while_slack_is_down_serve_still_takes_hooks_and_connects_once_slack_is_back(
    fakes, bot_files
):
    slack, sockets = fakes
    slack.fail_next("apps.connections.open", 503, times=1000)  # down until cleared below
    bot = start_bot(*bot_files, slack, sockets)
    try:
        # The HTTP server starts after the first apps.connections.open has failed.
        answer = wait_until(bot, lambda: health(bot), "/healthz answering")
        assert answer.json()["mode"] == "socket"
        fire(bot, "while-slack-is-down")
        assert sockets.connections == []
        assert {c.status for c in slack.calls_to("apps.connections.open")} == {503}
        slack.clear()  # Slack is back: the next try, a second after the first, connects
        connected(bot)
        assert [c.status for c in slack.calls_to("apps.connections.open")] == [200]
        envelope_id = sockets.send_envelope("slash_commands", slash_command(bot, "status crm"))
        assert acked(bot, envelope_id).seconds < SLACK_DEADLINE
    finally:
        returncode = stop_bot(bot)
    logged = bot.logged()
    assert returncode == 0, logged
    assert "Socket Mode cannot connect yet (internal_error)" in logged
    assert "Traceback" not in logged
