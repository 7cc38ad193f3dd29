"""Mail as jobs and vendors send it (tests/data/mail, written for these tests): the subject
and the text the rules read, whatever the encoding."""

import pytest

from commands.mail.intake import parse_address
from commands.mail.parse import MAX_TEXT, parse_mail
from tests.mail.conftest import DOMAIN, fixture


def test_multipart_alternative_is_read_from_its_plain_part_quoted_printable_undone():
    mail = parse_mail(fixture("banner_failure.eml"))
    assert mail.subject == "SZPAPPL completed with ERRORS"
    assert mail.sender == "jobsub@banner.example.edu"
    assert mail.message_id == "<20261201080512.4F3A21C0@jobsub01.example.edu>"
    # A soft line break of quoted-printable is joined, and =E2=80=94 is an em dash.
    assert '"SATURN"."SARADAP"."SARADAP_TERM_CODE_ENTRY") at row 402' in mail.text
    assert "full listing. \u2014 Banner Job Submission" in mail.text
    assert "<td>" not in mail.text


def test_base64_and_an_encoded_subject_are_decoded():
    mail = parse_mail(fixture("workday_success_base64.eml"))
    assert mail.subject == "Integration event completed: Banner_Worker_Sync"
    assert "Müller, Ødegård and Nguyễn were updated." in mail.text


def test_windows_1252_is_decoded_and_an_attachment_is_never_read():
    mail = parse_mail(fixture("slate_import_cp1252.eml"))
    assert "Café au lait admissions \u2014 1,204 rows." in mail.text
    assert "ERROR duplicate" not in mail.text and "errors.csv" not in mail.text


def test_an_html_only_message_becomes_text_without_its_markup_or_styles():
    mail = parse_mail(fixture("vendor_html_only.eml"))
    assert mail.text.splitlines() == [
        "Sync failed",
        "rejected: 3 records",
        "record 7: bad date",
        "record 9: <missing>",
    ]


def test_an_unknown_charset_and_stray_bytes_are_read_as_far_as_they_go():
    mail = parse_mail(fixture("unknown_charset.eml"))
    assert mail.text.startswith("Result: rejected: 2 rows ")
    assert mail.text.endswith(" end") and mail.message_id == ""


def test_a_huge_body_is_cut_and_nul_bytes_cannot_reach_the_database():
    raw = b"Subject: big\x00one\r\n\r\n" + b"line \x00 of text\r\n" * 5000
    mail = parse_mail(raw)
    assert len(mail.text) == MAX_TEXT and "\x00" not in mail.text + mail.subject


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (f"crm@{DOMAIN}", ("crm", None)),
        (f"<CRM+Fail@{DOMAIN.upper()}>", ("crm", "fail")),
        (f"crm+start@{DOMAIN}", ("crm", "start")),
        (f"crm+other@{DOMAIN}", None),
        ("crm@elsewhere.example.edu", None),
        (f"@{DOMAIN}", None),
        (f"+fail@{DOMAIN}", None),
    ],
)
def test_an_address_names_an_integration_and_maybe_a_kind(address, expected):
    parsed = parse_address(address, DOMAIN)
    assert (parsed.integration_id, parsed.kind) == expected if expected else parsed is None


def test_a_rule_that_would_backtrack_for_minutes_in_re_ends_at_once_without_a_match():
    import time

    from commands.catalog.mail_spec import SEARCH_SECONDS, EmailSpec

    rules = EmailSpec.model_validate(
        {"fail_when": {"body": r"^(\w+\s?)*$"}, "otherwise": "success"}
    )
    started = time.monotonic()
    assert rules.outcome("Nightly", "word " * 2000 + "!") == "success"
    assert time.monotonic() - started < 4 * SEARCH_SECONDS + 1
