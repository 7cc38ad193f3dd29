"""E-mail intake end to end: Python's smtplib talks SMTP to the bot's real listener, and what
it accepts becomes alerts and pings, posted through the outbox to the fake Slack Web API."""

import json
import smtplib
import ssl
from datetime import timedelta

import pytest
import trustme
from sqlalchemy import func, select, text

from bot.listeners.slash_commands import answer
from storage.models import Alert, HeartbeatPing, ReceivedEvent
from tests.mail.conftest import DOMAIN, fixture, with_message_id

JOBSUB = f"banner-jobsub@{DOMAIN}"


def count(runtime, model):
    with runtime.deps.sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


def alerts(runtime):
    with runtime.deps.sessions() as session:
        return session.scalars(select(Alert).order_by(Alert.id)).all()


def posts_to(fake_slack, channel):
    return [
        c
        for c in fake_slack.calls_to("chat.postMessage")
        if c.args.get("channel") == channel and not c.args.get("thread_ts")
    ]


def test_a_banner_failure_email_raises_one_alert_posted_with_its_error_lines(mailer, fake_slack):
    mailer.send(fixture("banner_failure.eml"), JOBSUB)
    mailer.send(with_message_id(fixture("banner_failure.eml"), "second-run@jobsub01"), JOBSUB)
    mailer.deliver()
    [alert] = alerts(mailer.runtime)
    assert (alert.integration_id, alert.source, alert.status, alert.count) == (
        "banner-jobsub",
        "email",
        "firing",
        2,
    )
    assert alert.summary == "SZPAPPL completed with ERRORS"
    [post] = posts_to(fake_slack, "C0JOBSUB1")
    blocks = json.dumps(post.args["blocks"])
    assert "SZPAPPL completed with ERRORS" in blocks
    assert "ERROR: ORA-00001: unique constraint (SATURN.PK_SARADAP) violated at row 318" in blocks
    assert "rejected: 12 rows" in blocks
    # Each message is kept as received, like a hook's body.
    with mailer.runtime.deps.sessions() as session:
        kept = session.scalars(select(ReceivedEvent)).all()
    assert [(k.source, k.alerts) for k in kept] == [("email", 1), ("email", 0)]
    assert kept[0].body == fixture("banner_failure.eml")


def test_a_success_email_resolves_a_missed_heartbeat(mailer, fake_slack):
    runtime = mailer.runtime
    runtime.deps.clock.now += timedelta(days=1)  # crm's nightly run (02:00 Chicago) missed
    runtime.tick()
    [missed] = [a for a in alerts(runtime) if a.integration_id == "crm"]
    assert (missed.source, missed.status) == ("heartbeat", "firing")
    mailer.send(
        fixture("workday_success_base64.eml"), f"crm@{DOMAIN}", "donotreply@workday.example.com"
    )
    [resolved] = [a for a in alerts(runtime) if a.integration_id == "crm"]
    assert resolved.status == "resolved"
    with runtime.deps.sessions() as session:
        [ping] = session.scalars(select(HeartbeatPing)).all()
    assert (ping.kind, ping.method) == ("success", "SMTP")
    assert "Müller, Ødegård and Nguyễn" in ping.body


def test_a_sender_not_allowed_is_refused_with_550_and_stored_nowhere(mailer):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        mailer.send(fixture("banner_failure.eml"), JOBSUB, "someone@elsewhere.example.net")
    [(code, message)] = refused.value.recipients.values()
    assert code == 550 and b"someone@elsewhere.example.net may not write" in message
    assert count(mailer.runtime, ReceivedEvent) == 0
    assert alerts(mailer.runtime) == []


@pytest.mark.parametrize(
    ("to", "why"),
    [
        (f"nope@{DOMAIN}", b"No integration called nope"),
        ("banner-jobsub@other.example.edu", b"No such address here"),
        (f"banner-jobsub+later@{DOMAIN}", b"No such address here"),
    ],
)
def test_an_address_that_is_no_integrations_is_refused_with_550(mailer, to, why):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        mailer.send(fixture("banner_failure.eml"), to)
    [(code, message)] = refused.value.recipients.values()
    assert code == 550 and why in message
    assert count(mailer.runtime, ReceivedEvent) == 0


def test_a_25_mb_message_is_refused_and_stored_nowhere(mailer):
    # 25 MB, in lines as long as a base64 attachment's.
    huge = fixture("banner_failure.eml") + (b"x" * 76 + b"\r\n") * 320_000
    with pytest.raises((smtplib.SMTPSenderRefused, smtplib.SMTPDataError)) as refused:
        mailer.send(huge, JOBSUB)
    assert refused.value.smtp_code == 552
    # Without SIZE announced first, the listener stops reading at its limit all the same.
    with smtplib.SMTP("127.0.0.1", mailer.port, timeout=60) as client:
        client.ehlo()
        client.esmtp_features.pop("size", None)
        with pytest.raises(smtplib.SMTPDataError) as too_long:
            client.sendmail("jobsub@banner.example.edu", [JOBSUB], huge)
    assert too_long.value.smtp_code == 552
    assert count(mailer.runtime, ReceivedEvent) == 0


def test_a_store_failure_answers_451_and_the_retried_message_is_stored_once(mailer):
    runtime = mailer.runtime
    with runtime.engine.begin() as conn:  # the table the raw message goes to is gone
        conn.execute(text("ALTER TABLE received_events RENAME TO received_events_away"))
    try:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            mailer.send(fixture("banner_failure.eml"), JOBSUB)
        assert refused.value.smtp_code == 451
    finally:
        with runtime.engine.begin() as conn:
            conn.execute(text("ALTER TABLE received_events_away RENAME TO received_events"))
    assert alerts(runtime) == []  # nothing of it was kept: the relay will send it again
    mailer.send(fixture("banner_failure.eml"), JOBSUB)  # the relay's retry
    mailer.send(fixture("banner_failure.eml"), JOBSUB)  # a retry of a 250 it did not see
    assert count(runtime, ReceivedEvent) == 1
    [alert] = alerts(runtime)
    assert alert.count == 1


def test_the_rules_and_the_address_decide_what_a_message_means(mailer):
    runtime = mailer.runtime
    # "Import completed with 12 errors": fail_when's subject pattern is asked first.
    mailer.send(fixture("slate_import_cp1252.eml"), JOBSUB, "noreply@slate.example.org")
    [alert] = alerts(runtime)
    assert alert.status == "firing" and "Café au lait admissions" in alert.details
    assert "ERROR duplicate" not in alert.details  # the attachment is not read
    # "Job finished" matches no rule: otherwise is fail; +start is a start whatever it says.
    mailer.send(fixture("unknown_charset.eml"), f"banner-jobsub+start@{DOMAIN}")
    assert [a.count for a in alerts(runtime)] == [1]
    success = with_message_id(fixture("workday_success_base64.eml"), "ok-1@jobsub01")
    mailer.send(success, JOBSUB)  # "Integration event completed": success resolves it
    assert [a.status for a in alerts(runtime)] == ["resolved"]
    mailer.send(fixture("vendor_html_only.eml"), JOBSUB, "alerts@vendor.example.com")
    [again] = alerts(runtime)
    assert again.status == "firing" and again.summary == "Nightly sync failed"
    assert "record 9: <missing>" in again.details


def test_a_mail_the_rules_say_to_ignore_is_kept_and_does_nothing(start_mailer, tmp_path):
    from tests.mail.conftest import mail_catalog

    mailer = start_mailer()
    mail_catalog(
        mailer.runtime.deps.settings.catalog_path,
        email={"from": ["@banner.example.edu"], "otherwise": "ignore"},
    )
    assert mailer.runtime.watcher.check()
    mailer.send(fixture("unknown_charset.eml"), JOBSUB)
    assert alerts(mailer.runtime) == []
    assert count(mailer.runtime, ReceivedEvent) == 1


def test_with_a_certificate_and_a_login_mail_is_taken_only_encrypted_and_logged_in(
    start_mailer, tmp_path
):
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1", DOMAIN)
    chain, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    mailer = start_mailer(
        INTEG_SMTP_TLS_CERT=str(chain),
        INTEG_SMTP_TLS_KEY=str(key),
        INTEG_SMTP_USER="relay",
        INTEG_SMTP_PASSWORD="s3cret",
    )
    raw = fixture("banner_failure.eml")
    with smtplib.SMTP("127.0.0.1", mailer.port, timeout=30) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail("jobsub@banner.example.edu", [JOBSUB], raw)
        assert refused.value.smtp_code == 530  # authentication required
        with pytest.raises(smtplib.SMTPNotSupportedError):
            client.login("relay", "s3cret")  # not offered before STARTTLS
    context = ssl.create_default_context()
    authority.configure_trust(context)
    with smtplib.SMTP("127.0.0.1", mailer.port, timeout=30) as client:
        client.starttls(context=context)
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("relay", "wrong")
        client.login("relay", "s3cret")
        assert client.sendmail("jobsub@banner.example.edu", [JOBSUB], raw) == {}
    assert count(mailer.runtime, ReceivedEvent) == 1


def test_integ_info_shows_the_address_to_its_responders_only(mailer):
    owner = answer(mailer.runtime.deps, "info banner-jobsub", "U0OWNER01", None)
    shown = json.dumps(owner.blocks)
    assert f"`banner-jobsub@{DOMAIN}`" in shown
    assert "only from `jobsub@banner.example.edu`, `@slate.example.org`" in shown
    other = json.dumps(answer(mailer.runtime.deps, "info banner-jobsub", "U0OTHER01", None).blocks)
    assert "@integ.example.edu" not in other
    assert "shown to its responders only" in other


def test_one_message_to_two_addresses_is_taken_by_the_one_allowed_only(mailer):
    # crm has no rules (anyone may write); a vendor address may not write to banner-jobsub.
    with smtplib.SMTP("127.0.0.1", mailer.port, timeout=30) as client:
        refused = client.sendmail(
            "someone@elsewhere.example.net",
            [f"crm+fail@{DOMAIN}", JOBSUB],
            fixture("banner_failure.eml"),
        )
    assert list(refused) == [JOBSUB] and refused[JOBSUB][0] == 550
    [alert] = alerts(mailer.runtime)
    assert (alert.integration_id, alert.summary) == ("crm", "SZPAPPL completed with ERRORS")


def test_a_message_id_reused_elsewhere_does_not_hide_the_real_report(mailer):
    # Someone writes to crm with the Message-ID that Banner's job will use...
    mailer.send(fixture("banner_failure.eml"), f"crm+start@{DOMAIN}", "prank@elsewhere.example.net")
    # ...and the real failure to banner-jobsub is still taken.
    mailer.send(fixture("banner_failure.eml"), JOBSUB)
    [alert] = alerts(mailer.runtime)
    assert alert.integration_id == "banner-jobsub"
    assert count(mailer.runtime, ReceivedEvent) == 2


def test_a_database_that_cannot_answer_at_rcpt_gets_451_not_550(mailer):
    with mailer.runtime.engine.begin() as conn:
        conn.execute(text("ALTER TABLE integrations RENAME TO integrations_away"))
    try:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            mailer.send(fixture("banner_failure.eml"), JOBSUB)
    finally:
        with mailer.runtime.engine.begin() as conn:
            conn.execute(text("ALTER TABLE integrations_away RENAME TO integrations"))
    [(code, _)] = refused.value.recipients.values()
    assert code == 451


def test_bounces_and_out_of_office_replies_are_not_job_reports(mailer):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        mailer.send(fixture("workday_success_base64.eml"), f"crm@{DOMAIN}", "")
    [(code, message)] = refused.value.recipients.values()
    assert code == 550 and b"empty sender" in message
    reply = b"Auto-Submitted: auto-replied\r\n" + fixture("banner_failure.eml")
    mailer.send(reply, JOBSUB)
    assert alerts(mailer.runtime) == [] and count(mailer.runtime, ReceivedEvent) == 1


def test_hostile_mail_is_answered_plainly_and_stores_nothing_broken(mailer):
    with smtplib.SMTP("127.0.0.1", mailer.port, timeout=30) as client:
        client.ehlo()
        client.mail("jobsub@banner.example.edu")
        code, message = client.rcpt("bad\x7fname@" + DOMAIN)
        assert code == 553 and b"printable" in message
    # An encoded-word subject of a megabyte and broken MIME boundaries: read in a moment.
    subject = b"Subject: " + b"\r\n ".join([b"=?utf-8?q?x?= =?utf-8?q?y?="] * 40_000) + b"\r\n"
    broken = (
        subject + b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="nope"\r\n'
        b"Message-ID: <hostile@x>\r\n\r\n--other\r\nrejected: 9 rows\r\n"
    )
    mailer.send(broken, JOBSUB)
    [alert] = alerts(mailer.runtime)
    assert alert.status == "firing" and len(alert.summary) <= 500
