"""The weekly digest to INTEG_DIGEST_CHANNEL: posted once a week at the configured weekday
and hour, with open alerts, reviews due, changes logged and heartbeats missed."""

import json
import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.settings import SettingsError, load_settings
from commands.alerts.ingest import ingest
from commands.alerts.payloads import parse_generic
from commands.changes.entries import record
from commands.reviews.digest import DigestSchedule, post_digest
from storage.db import transaction
from storage.models import Digest, OutboxMessage
from tests.helpers.runtime import BOT_TOKEN, make_settings, start_server, stop_server
from tests.helpers.slack_answers import block_kit_problems, strings_in
from tests.helpers.slack_signing import SIGNING_SECRET

DIGEST_CHANNEL = "C0DIGEST1"
MONDAY_NINE = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # the first after the clock's start


def digest_settings(database_url, **env):
    return make_settings(database_url, INTEG_DIGEST_CHANNEL=DIGEST_CHANNEL, **env)


def digests(runtime):
    with runtime.deps.sessions() as session:
        ids = set(session.scalars(select(Digest.outbox_id)))
        rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    return [m for m in rows if m.id in ids]


def text_of(message):
    blocks = message.payload["blocks"] if hasattr(message, "payload") else message["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    return "\n".join(strings_in(blocks))


def fire(runtime, integration, key, summary):
    body = json.dumps(
        {"integration": integration, "summary": summary, "key": key, "status": "firing"}
    ).encode()
    with transaction(runtime.deps.sessions) as session:
        ingest(session, parse_generic(body), runtime.deps.clock(), None)


def log_change(runtime, summary, integration="crm", category="config"):
    now = runtime.deps.clock()
    with transaction(runtime.deps.sessions) as session:
        record(
            session,
            integration_id=integration,
            category=category,
            summary=summary,
            author="U0OWNER01",
            source="command",
            happened_at=now,
            logged_at=now,
        )


@pytest.mark.parametrize(
    ("now", "weekday", "hour", "zone", "expected"),
    [
        # Thursday: the latest Monday 09:00 is three days back.
        (datetime(2026, 11, 26, 9, 30, tzinfo=UTC), 0, 9, "UTC", datetime(2026, 11, 23, 9)),
        # Monday 08:59: not yet this week's, so last week's.
        (datetime(2026, 11, 30, 8, 59, tzinfo=UTC), 0, 9, "UTC", datetime(2026, 11, 23, 9)),
        (MONDAY_NINE, 0, 9, "UTC", datetime(2026, 11, 30, 9)),
        # 09:00 in Chicago is 15:00 UTC in winter and 14:00 UTC in summer.
        (
            datetime(2026, 12, 4, 16, 0, tzinfo=UTC),
            4,
            9,
            "America/Chicago",
            datetime(2026, 12, 4, 15),
        ),
        (
            datetime(2026, 7, 3, 14, 0, tzinfo=UTC),
            4,
            9,
            "America/Chicago",
            datetime(2026, 7, 3, 14),
        ),
        # Sunday 23:00 in Auckland is still Sunday morning UTC.
        (
            datetime(2026, 11, 29, 10, 0, tzinfo=UTC),
            6,
            23,
            "Pacific/Auckland",
            datetime(2026, 11, 29, 10),
        ),
    ],
)
def test_the_digest_is_due_at_the_latest_weekday_and_hour_in_its_timezone(
    now, weekday, hour, zone, expected
):
    assert DigestSchedule(weekday, hour, zone).latest(now) == expected.replace(tzinfo=UTC)


def test_one_digest_a_week_at_the_configured_time_with_the_weeks_facts(
    database_url, make_runtime, clock
):
    runtime = make_runtime(digest_settings(database_url))
    runtime.tick()
    # Started mid-week (Thursday): the bot waits for Monday rather than posting at once.
    assert digests(runtime) == []

    fire(runtime, "crm", "nightly", "Nightly load failed: 12 rows rejected")
    fire(runtime, "hr-feed", "<!channel> feed", "Workday feed <!channel> & <https://evil|x>")
    log_change(runtime, "Moved the drop to SFTP\nsecond line")
    log_change(runtime, "Rotated the API key", category="credentials")
    # No heartbeat of the example catalog ever pings.
    for day in (27, 28, 29):
        clock.now = datetime(2026, 11, day, 4, 0, tzinfo=UTC)
        runtime.tick()
    clock.now = MONDAY_NINE - timedelta(minutes=1)
    runtime.tick()
    assert digests(runtime) == []

    clock.now = MONDAY_NINE
    runtime.tick()
    runtime.tick()
    [message] = digests(runtime)
    assert message.channel == DIGEST_CHANNEL and message.kind == "message"
    text = text_of(message)
    assert "Weekly integration digest: Mon 2026-11-23 to Mon 2026-11-30" in text
    assert "#1 `crm` Nightly load failed: 12 rows rejected: *firing*, open 3d 23h" in text
    assert "&lt;!channel&gt; &amp; &lt;https://evil|x&gt;" in text
    assert "<!channel>" not in text and "<https://evil" not in text
    # crm's monthly review is due 2026-12-01, within the coming week.
    assert "`crm` Slate to Banner admissions: due 2026-12-01, <@U0OWNER01>" in text
    assert "2 logged: `crm` ×2" in text
    assert "`crm` config: Moved the drop to SFTP second line" in text
    assert "`crm` credentials: Rotated the API key" in text
    # crm's nightly heartbeat (02:00 Chicago, 08:00 UTC; 1h grace) missed on the 27th,
    # 28th and 29th, raised at the next tick each time, and this morning's at 09:00.
    assert "• `crm`: heartbeat missed ×4 since Sat 11-28 04:00 UTC, still open" in text
    # The example catalog's other heartbeats have not pinged either: six alerts in all.
    assert text.count("heartbeat missed ×") == 6
    assert message.payload["text"].endswith(
        "open alerts 8 · reviews due 4 · changes logged 2 · monitor alerts 6"
    )
    assert block_kit_problems(message.payload) == []

    # The week after: a second digest, of that week only.
    clock.now = MONDAY_NINE + timedelta(days=7, minutes=30)
    runtime.tick()
    first, second = digests(runtime)
    later = text_of(second)
    assert "Mon 2026-11-30 to Mon 2026-12-07" in later
    assert "*Changes logged this week*\nNone logged." in later


def test_the_digest_notification_counts_what_the_message_lists(database_url, make_runtime, clock):
    runtime = make_runtime(digest_settings(database_url))
    fire(runtime, "crm", "a", "first")
    log_change(runtime, "one")
    clock.now = MONDAY_NINE
    runtime.tick()
    [message] = digests(runtime)
    text = text_of(message)
    counts = dict(
        part.rsplit(" ", 1) for part in message.payload["text"].rsplit(": ", 1)[1].split(" · ")
    )
    # The heartbeats missed at this very tick are open now, but were not missed last week.
    assert int(counts["open alerts"]) == text.count("\n• #") == 7
    assert int(counts["reviews due"]) == text.count(": due 2026-12-01, ") == 4
    assert int(counts["changes logged"]) == 1 and "`crm` config: one" in text
    assert counts["monitor alerts"] == "0" and "None missed." in text


def test_a_restart_or_a_second_process_does_not_post_the_digest_again(
    database_url, make_runtime, clock
):
    settings = digest_settings(database_url)
    first, second = make_runtime(settings), make_runtime(settings)
    clock.now = MONDAY_NINE
    first.tick()
    second.tick()
    first.close()
    restarted = make_runtime(settings)
    clock.now += timedelta(hours=3)
    restarted.tick()
    assert len(digests(restarted)) == 1
    schedule = DigestSchedule(0, 9, "UTC")
    with transaction(restarted.deps.sessions) as session:
        assert post_digest(session, clock.now, DIGEST_CHANNEL, schedule) == 0


def test_two_processes_ticking_at_the_same_moment_post_the_digest_once(
    database_url, make_runtime, clock
):
    if database_url.startswith("sqlite"):
        pytest.skip("one SQLite file serves one process; replicas share a PostgreSQL")
    settings = digest_settings(database_url)
    runtimes = [make_runtime(settings) for _ in range(4)]
    clock.now = MONDAY_NINE
    start = threading.Barrier(len(runtimes))
    errors = []
    schedule = DigestSchedule(0, 9, "UTC")

    def tick(runtime):
        start.wait()
        try:
            with transaction(runtime.deps.sessions) as session:
                post_digest(session, clock.now, DIGEST_CHANNEL, schedule)
        except Exception as exc:  # pragma: no cover - the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=tick, args=(r,)) for r in runtimes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(digests(runtimes[0])) == 1


def test_a_digest_missed_while_down_is_posted_late_once_but_not_a_day_later(
    database_url, make_runtime, clock
):
    runtime = make_runtime(digest_settings(database_url))
    clock.now = MONDAY_NINE + timedelta(hours=6)
    runtime.tick()
    [message] = digests(runtime)
    assert "Due 2026-11-30 09:00 UTC; posted late" in text_of(message)
    # Down from before the next Monday until the Tuesday after it: that week's is skipped.
    clock.now = MONDAY_NINE + timedelta(days=8, hours=1)
    runtime.tick()
    assert len(digests(runtime)) == 1


def test_no_digest_without_a_digest_channel(database_url, make_runtime, clock):
    runtime = make_runtime(make_settings(database_url))
    clock.now = MONDAY_NINE
    runtime.tick()
    assert digests(runtime) == []


def test_the_digest_reaches_slack_as_valid_block_kit_with_many_alerts(
    database_url, fake_slack, make_runtime, clock
):
    settings = digest_settings(
        database_url,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=fake_slack.url,
        INTEG_DIGEST_WEEKDAY="Friday",
        INTEG_DIGEST_HOUR="16",
        INTEG_DIGEST_TIMEZONE="Europe/Paris",
    )
    server = start_server(make_runtime(settings))
    try:
        runtime = server.runtime
        long = "Ünïcödé 🚨 " + "x" * 3000
        for n in range(60):
            fire(runtime, "crm", f"key-{n}", f"{n} {long}")
            log_change(runtime, f"change {n} `code` *bold* {long}")
        # Friday 2026-11-27 16:00 in Paris is 15:00 UTC.
        clock.now = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
        runtime.tick()
        for _ in range(3):  # the digest's channel has nothing else queued before it
            runtime.outbox.run_once()
        [post] = [
            c
            for c in fake_slack.calls_to("chat.postMessage")
            if c.args["channel"] == DIGEST_CHANNEL
        ]
        assert post.response["ok"] is True
        payload = {"text": post.args["text"], "blocks": post.args["blocks"]}
        if isinstance(payload["blocks"], str):
            payload["blocks"] = json.loads(payload["blocks"])
        assert block_kit_problems(payload) == []
        text = text_of(payload)
        # Sixty fired here, and the heartbeats that missed while the clock moved on.
        opened = int(re.search(r"(\d+) open, oldest first:", text).group(1))
        assert opened > 60 and f"…and {opened - 10} more." in text
        assert "60 logged: `crm` ×60" in text
    finally:
        stop_server(server)


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"INTEG_DIGEST_WEEKDAY": "funday"}, "INTEG_DIGEST_WEEKDAY: must be a weekday"),
        ({"INTEG_DIGEST_WEEKDAY": "1"}, "INTEG_DIGEST_WEEKDAY: must be a weekday"),
        ({"INTEG_DIGEST_HOUR": "24"}, "INTEG_DIGEST_HOUR:"),
        ({"INTEG_DIGEST_TIMEZONE": "Mars/Olympus"}, "INTEG_DIGEST_TIMEZONE: unknown timezone"),
    ],
)
def test_a_wrong_digest_setting_is_one_clear_line(env, error):
    with pytest.raises(SettingsError) as raised:
        load_settings(env)
    assert str(raised.value).startswith(error)


def test_weekday_names_are_read_in_any_case_and_length():
    for name, number in (("mon", 0), ("Tuesday", 1), ("WED", 2), ("sunday", 6)):
        assert load_settings({"INTEG_DIGEST_WEEKDAY": name}).integ_digest_weekday == number
