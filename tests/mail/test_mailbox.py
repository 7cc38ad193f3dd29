"""The IMAP poller against a small IMAP server on loopback (tests/helpers/fake_imap.py):
what the mailbox holds is taken by the same rules as over SMTP, and moved to the done folder
only once it is stored."""

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, text

from storage.models import Alert, ReceivedEvent
from tests.helpers.fake_imap import FakeImap
from tests.helpers.runtime import make_settings
from tests.mail.conftest import DOMAIN, fixture, mail_catalog


@pytest.fixture
def imap() -> Iterator[FakeImap]:
    with FakeImap() as server:
        yield server


@pytest.fixture
def runtime(database_url, make_runtime, imap, tmp_path):
    return make_runtime(
        make_settings(
            database_url,
            catalog=mail_catalog(tmp_path / "catalog.yml"),
            INTEG_MAIL_DOMAIN=DOMAIN,
            INTEG_IMAP_URL=f"imap://integ-bot:s3cret@127.0.0.1:{imap.port}/INBOX",
        )
    )


def count(runtime, model):
    with runtime.deps.sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_a_failure_in_the_mailbox_raises_its_alert_and_is_moved_to_the_done_folder(runtime, imap):
    imap.deliver(fixture("banner_failure.eml"))
    imap.deliver(fixture("workday_success_base64.eml"))  # to crm@: a ping of its heartbeat
    assert runtime.mailbox.run_due() == 2
    with runtime.deps.sessions() as session:
        [alert] = session.scalars(select(Alert)).all()
    assert (alert.integration_id, alert.summary) == (
        "banner-jobsub",
        "SZPAPPL completed with ERRORS",
    )
    assert imap.mailboxes["INBOX"] == []
    assert len(imap.mailboxes["integ-bot-done"]) == 2
    assert "UID MOVE" in imap.commands
    assert runtime.mailbox.run_due() == 0  # nothing left to read


def test_without_move_the_poller_copies_flags_and_expunges(runtime, imap):
    imap.no_move = True
    imap.deliver(fixture("banner_failure.eml"))
    assert runtime.mailbox.run_due() == 1
    assert imap.mailboxes["INBOX"] == [] and len(imap.mailboxes["integ-bot-done"]) == 1
    assert {"UID COPY", "UID STORE", "EXPUNGE"} <= set(imap.commands)


def test_a_message_that_cannot_be_stored_stays_and_is_taken_once_at_the_next_poll(runtime, imap):
    imap.deliver(fixture("banner_failure.eml"))
    with runtime.engine.begin() as conn:
        conn.execute(text("ALTER TABLE received_events RENAME TO received_events_away"))
    try:
        assert runtime.mailbox.run_due() == 0
    finally:
        with runtime.engine.begin() as conn:
            conn.execute(text("ALTER TABLE received_events_away RENAME TO received_events"))
    assert len(imap.mailboxes["INBOX"]) == 1 and count(runtime, Alert) == 0
    assert runtime.mailbox.run_due() == 1
    # Moved late (a copy left behind), it is read again and not counted twice.
    imap.deliver(fixture("banner_failure.eml"))
    assert runtime.mailbox.run_due() == 0
    assert count(runtime, ReceivedEvent) == 1
    with runtime.deps.sessions() as session:
        assert session.scalars(select(Alert.count)).one() == 1


def test_a_sender_not_allowed_is_stored_nowhere_and_filed_away(runtime, imap):
    raw = (
        fixture("banner_failure.eml")
        .replace(
            b"From: Banner Job Submission <jobsub@banner.example.edu>",
            b"From: Someone <someone@elsewhere.example.net>",
        )
        .replace(
            b"Return-Path: <jobsub@banner.example.edu>",
            b"Return-Path: <someone@elsewhere.example.net>",
        )
    )
    imap.deliver(raw)
    assert runtime.mailbox.run_due() == 0
    assert count(runtime, ReceivedEvent) == 0 and count(runtime, Alert) == 0
    assert imap.mailboxes["INBOX"] == []  # not read again every minute


def test_a_mailbox_that_refuses_the_login_is_tried_again_later_and_loses_nothing(runtime, imap):
    imap.fail_login = True
    imap.deliver(fixture("banner_failure.eml"))
    assert runtime.mailbox.run_due() == 0
    imap.fail_login = False
    assert runtime.mailbox.run_due() == 1


def test_a_message_with_raw_8_bit_headers_is_read_and_does_not_stop_the_rest(runtime, imap):
    poisoned = (
        fixture("banner_failure.eml")
        .replace(
            b"From: Banner Job Submission <jobsub@banner.example.edu>",
            b"From: Banner \xe9\xff <jobsub@banner.example.edu>",
        )
        .replace(b"Return-Path: <jobsub@banner.example.edu>\r\n", b"")
    )
    imap.deliver(poisoned)
    imap.deliver(fixture("workday_success_base64.eml"))
    assert runtime.mailbox.run_due() == 2
    assert imap.mailboxes["INBOX"] == []
